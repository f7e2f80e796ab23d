"""`appealflow model evaluate`: routing, duplicates and Q&A measured on a labelled file, next to the
keyword-rules baseline in the same run.

The file is JSON lines, one appeal each: `id`, `lang`, `title`, `text`, `district`, `street`,
`priority`, `category` (the labeller's), `departments` (every acceptable one; empty when only a
person can place it), `duplicate_group` (appeals about one matter share it) and `hour` (when it
arrived, hours from the start of the set). The routing model is judged by 5-fold cross-validation,
folds kept whole per duplicate group: each appeal is decided by weights calibrated without it or
its twins, as a model trained on past appeals meets new ones.

`appealflow model evaluate --active` judges instead the model a city runs: the active stored version
(or the zero-shot one dispatch falls back to), once on every appeal of the file, nothing trained on
it, beside the keyword rules; both through dispatch's own `decide_all`, as a dispatch batch decides.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlmodel import Session, col, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus, AppealType, Channel
from appealflow.models.appeals.lifecycle import Action
from appealflow.models.city.reference import REFERENCE_DIR, Reference, _flatten, _read
from appealflow.models.routing.classifier import (
    CategoryModel,
    CategoryText,
    Item,
    OutdatedModel,
    Params,
    Verdict,
    appeal_text,
    judge,
)
from appealflow.models.routing.classifier_store import ClassifierVersion, category_texts, zero_shot
from appealflow.models.routing.dispatch import Decision, decide_all
from appealflow.models.routing.duplicates import THRESHOLD, Probe, Problem, judged_pairs
from appealflow.models.routing.keywords import Catalogue, CategoryNode, Rule
from appealflow.models.routing.policy_qa import (
    SAMPLE_QA_BASE,
    Index,
    PolicyAnswer,
    background,
    entry_text,
    parse,
    pieces,
    rank,
)
from appealflow.models.routing.training import Labelled, fit, group_folds

EVAL_DIR = Path(__file__).resolve().parents[2] / "tests" / "eval"


def catalogue_from(folder: Path = REFERENCE_DIR) -> tuple[Catalogue, list[CategoryText]]:
    cats = _flatten(_read("categories", folder))
    rules = _read("routing_rules", folder)
    catalogue = Catalogue([CategoryNode(c["code"], c["parent_code"], tuple(c.get("keywords") or ())) for c in cats],
                          [Rule(r["category"], r.get("district"), r.get("street"), r["department"],
                                tuple(r.get("assisting") or ())) for r in rules])
    texts = sorted((CategoryText(c["code"], c["name_zh"], c["name_en"], tuple(c.get("keywords") or ()),
                                 c.get("description_zh") or "", c.get("description_en") or "",
                                 tuple(c.get("examples") or ())) for c in cats), key=lambda c: c.code)
    return catalogue, texts


def read_labelled(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            for name in ("title", "text", "departments"):
                if name not in row:
                    raise ValueError(f"{path}:{n}: {name} is missing")
            rows.append(row)
    return rows


def labelled(rows: list[dict]) -> list[Labelled]:
    return [Labelled(Item(r["title"], r["text"], r.get("district"), r.get("street"),
                          r.get("priority") == "urgent"), tuple(r["departments"]),
                     r.get("category"), r.get("priority") == "urgent") for r in rows]


def _tally(kinds: list[str], rows: list[dict], top3: list[bool]) -> dict:
    out: dict = {}
    for lang in ["all", *sorted({r.get("lang", "?") for r in rows})]:
        idx = [i for i, r in enumerate(rows) if lang == "all" or r.get("lang", "?") == lang]
        n = max(len(idx), 1)
        out[lang] = dict(n=len(idx), correct=sum(kinds[i] == "correct" for i in idx) / n,
                         triage=sum(kinds[i] == "triage" for i in idx) / n,
                         silently_wrong=sum(kinds[i] == "wrong" for i in idx) / n,
                         top3=sum(top3[i] for i in idx) / n,
                         urgent_wrong=sum(kinds[i] == "wrong" and rows[i].get("priority") == "urgent" for i in idx))
    return out


def _kind(routed: str | None, acceptable: list[str]) -> str:
    if routed is None:
        return "triage"
    return "correct" if routed in acceptable else "wrong"


def keyword_baseline(catalogue: Catalogue, rows: list[dict], min_confidence: float = 0.5) -> dict:
    """Today's keyword vote as it was: a 1:1 tie scores 0.5 and passes a 0.5 minimum."""
    kinds = []
    for r in rows:
        found = catalogue.classify(r["title"], r["text"], None)
        route = (catalogue.route(found.category_code, r.get("district"), r.get("street"))
                 if found.category_code and found.confidence >= min_confidence else None)
        kinds.append(_kind(route.department_code if route else None, r["departments"]))
    return _tally(kinds, rows, [k == "correct" for k in kinds])


def model_figures(model: CategoryModel, catalogue: Catalogue, rows: list[dict], vectors: np.ndarray,
                  verdicts: list[Verdict]) -> dict:
    kinds = [_kind(v.top.department_code if v.decided and v.top else None, r["departments"])
             for v, r in zip(verdicts, rows, strict=True)]
    top3 = [any(s.department_code in r["departments"] for s in v.suggestions) for v, r in zip(verdicts, rows,
                                                                                            strict=True)]
    return _tally(kinds, rows, top3)


def cross_validated(model: CategoryModel, catalogue: Catalogue, rows: list[dict], vectors: np.ndarray,
                    folds: int = 5) -> tuple[list[Verdict], list[Params]]:
    """Each appeal judged by a model trained (`fit`, as `appealflow model train` does) on the other
    folds only: the labelled set stands in for dispatcher-confirmed history."""
    labs = labelled(rows)
    groups = [r.get("duplicate_group") or r.get("id") or str(i) for i, r in enumerate(rows)]
    fold = group_folds(groups, folds)
    verdicts: list[Verdict | None] = [None] * len(rows)
    chosen = []
    for f in range(folds):
        train_rows = np.flatnonzero(fold != f)
        test_rows = np.flatnonzero(fold == f)
        trained, _ = fit(model, catalogue, [labs[i] for i in train_rows], vectors[train_rows],
                         [groups[i] for i in train_rows])
        chosen.append(trained.params)
        for i, v in zip(test_rows, judge(trained, catalogue, [labs[i].item for i in test_rows], vectors[test_rows]),
                        strict=True):
            verdicts[i] = v
    return verdicts, chosen  # type: ignore[return-value]


def duplicate_problems(verdicts: list[Verdict]) -> list[Problem | None]:
    """What routing made of each appeal, as duplicates compare it: top category, the other readings,
    top department (the same the dispatch flow records)."""
    return [Problem(v.top.category_code, tuple(s.category_code for s in v.suggestions), v.top.department_code)
            if v.top else None for v in verdicts]


SWEEP = (0.86, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.96, 0.98)


def duplicate_figures(rows: list[dict], vectors: np.ndarray, problems: list[Problem | None] | None = None,
                      threshold: float = THRESHOLD) -> dict:
    """Pairs found against the labelled groups at the operating threshold, and across a sweep of it."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    probes = [Probe(i, r.get("district"), r.get("street"), start + timedelta(hours=float(r.get("hour") or 0)),
                    f"{r['title']}。{r['text']}", problems[i] if problems else None) for i, r in enumerate(rows)]
    judged = judged_pairs(probes, vectors)
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        if r.get("duplicate_group"):
            groups[r["duplicate_group"]].append(i)
    truth = {(a, b) for members in groups.values() for n, a in enumerate(members) for b in members[n + 1:]}

    def at(t: float) -> dict:
        found = {(j.a, j.b) for j in judged if j.score >= t}
        hit = len(found & truth)
        return dict(threshold=t, found_pairs=len(found), right_pairs=hit,
                    recall=hit / len(truth) if truth else 1.0, precision=hit / len(found) if found else 1.0)

    return dict(groups=len(groups), true_pairs=len(truth), **at(threshold),
                sweep=[at(t) for t in sorted({*SWEEP, threshold})])


def qa_figures(base_path: Path, queries_path: Path, embed, today: date) -> dict:
    """MRR@3 over the questions an entry answers, and every entry shown that was not one of the
    question's own (`expected`, or `also`: another entry on the same matter) counted off-topic."""
    fmt = "csv" if base_path.suffix == ".csv" else "json"
    entries = [e for e in parse(base_path.read_text(encoding="utf-8"), fmt)
               if (e["valid_from"] is None or e["valid_from"] <= today) and (e["valid_to"] is None
                                                                             or e["valid_to"] >= today)]
    rows = [PolicyAnswer(id=i, **e) for i, e in enumerate(entries)]
    index = Index.build(rows, embed([entry_text(r) for r in rows]), *background(embed))
    queries = [json.loads(line) for line in queries_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rr, unanswerable, handed_over, off_topic, shown = [], 0, 0, 0, 0
    for q in queries:
        hits = rank(index, q["query"], embed(pieces(q["query"])), 3)
        own = {q.get("expected"), *q.get("also", [])} - {None}
        shown += len(hits)
        off_topic += sum(h.question not in own for h in hits)
        if not own:
            unanswerable += 1
            handed_over += not hits
            continue
        ranks = [n for n, h in enumerate(hits, 1) if h.question in own]
        rr.append(1.0 / ranks[0] if ranks else 0.0)
    return dict(queries=len(queries), appeal_length=sum(q.get("kind") == "appeal" for q in queries),
                mrr3=sum(rr) / len(rr) if rr else 0.0, shown=shown, off_topic_shown=off_topic,
                not_found_handed_over=f"{handed_over}/{unanswerable}")


def run(data: Path, *, embed, model: CategoryModel, folds: int = 5, limit: int | None = None,
        qa_base: Path | None = None, qa_queries: Path | None = None, today: date | None = None) -> dict:
    rows = read_labelled(data)[:limit] if limit else read_labelled(data)
    catalogue, _ = catalogue_from()
    vectors = embed([appeal_text(r["title"], r["text"]) for r in rows])
    baseline = keyword_baseline(catalogue, rows)
    items = [lab.item for lab in labelled(rows)]
    zero_verdicts = judge(model, catalogue, items, vectors, Params())
    zero = model_figures(model, catalogue, rows, vectors, zero_verdicts)
    cv_verdicts, params = cross_validated(model, catalogue, rows, vectors, folds)
    trained = model_figures(model, catalogue, rows, vectors, cv_verdicts)
    dup = duplicate_figures(rows, vectors, duplicate_problems(zero_verdicts))
    qa = qa_figures(qa_base or SAMPLE_QA_BASE, qa_queries or EVAL_DIR / "qa_queries.jsonl", embed,
                    today or date(2026, 11, 27))
    return dict(appeals=len(rows), folds=folds, keyword_rules=baseline, model_zero_shot=zero, model_calibrated=trained,
                params=[p.__dict__ for p in params], duplicates=dup, qa=qa)


TABLE_HEADER = f"{'':28}{'lang':>5}{'n':>5}{'correct':>9}{'triage':>8}{'wrong':>7}{'top-3':>7}{'urgent wrong':>14}"


def _table_rows(name: str, by_lang: dict) -> list[str]:
    lines = []
    for lang, f in by_lang.items():
        lines.append(f"{name:28}{lang:>5}{f['n']:>5}{f['correct']:>9.1%}{f['triage']:>8.1%}"
                     f"{f['silently_wrong']:>7.1%}{f['top3']:>7.1%}{f['urgent_wrong']:>14}")
        name = ""
    return lines


def report(result: dict) -> list[str]:
    lines = [f"Routing on {result['appeals']} labelled appeals (fractions of all appeals)", TABLE_HEADER]
    for name, key in (("keyword rules (today)", "keyword_rules"), ("model, zero-shot", "model_zero_shot"),
                      (f"model, calibrated ({result['folds']}-fold)", "model_calibrated")):
        lines += _table_rows(name, result[key])
    d = result["duplicates"]
    lines.append(f"Duplicates: {d['groups']} groups, {d['true_pairs']} true pairs; found {d['found_pairs']}, "
                 f"{d['right_pairs']} right: recall {d['recall']:.1%}, precision {d['precision']:.1%} "
                 f"(operating point: score >= {d['threshold']:.2f})")
    lines.append("  threshold sweep (recall/precision): " + "  ".join(
        f"{s['threshold']:.2f} {s['recall']:.0%}/{s['precision']:.0%}" for s in d.get("sweep", [])))
    q = result["qa"]
    lines.append(f"Q&A: {q['queries']} questions ({q['appeal_length']} appeal-length), MRR@3 {q['mrr3']:.3f}; "
                 f"{q['off_topic_shown']} of {q['shown']} answers shown off-topic; unanswerable handed to a person "
                 f"{q['not_found_handed_over']}")
    m = result["model_calibrated"]["all"]
    lines.append(json.dumps(dict(correct=round(m["correct"], 4), triage=round(m["triage"], 4),
                                 silently_wrong=round(m["silently_wrong"], 4), duplicate_recall=round(d["recall"], 4),
                                 duplicate_precision=round(d["precision"], 4), qa_mrr3=round(q["mrr3"], 4),
                                 qa_off_topic=q["off_topic_shown"], qa_appeal_length=q["appeal_length"],
                                 urgent_wrong=m["urgent_wrong"], appeals=result["appeals"])))
    return lines


# --- `--active`: the model a city runs, judged on appeals it never trained on -----------------------

START = datetime(2026, 11, 1, tzinfo=UTC)  # hour 0 of a labelled set (as duplicate_figures counts)


def dispatch_model(session: Session, routing_model: str, cache_dir: Path | None) -> CategoryModel | None:
    """The model dispatch routes with (`routing.batch.routing_model` → `classifier_store.active_model`):
    the active stored version, or, when none is active or it was written in an older format, the
    zero-shot one `ensure_active` would store, built (or read from the cache) here but not stored:
    evaluating writes nothing. None when the routing model is off: the keyword rules alone route."""
    if routing_model == "off":
        return None
    row = session.exec(select(ClassifierVersion).where(col(ClassifierVersion.status) == "active")
                       .order_by(col(ClassifierVersion.promoted_at).desc())).first()
    model = None
    if row is not None:
        try:
            model = CategoryModel.from_bytes(row.blob)
        except OutdatedModel:
            model = None
    if model is None:
        model = zero_shot(category_texts(session), routing_model, cache_dir)
    if model.embedder != routing_model:
        # Dispatch embeds with the configured backend: its vectors would not fit this model, the batch
        # would fail and the keyword rules would route every appeal.
        raise ValueError(f"the active model {model.version} reads {model.embedder} embeddings but the routing "
                         f"model is set to {routing_model}: dispatch would route by the keyword rules alone")
    return model


def as_received(rows: list[dict]) -> list[Appeal]:
    """Each labelled appeal as dispatch meets it: received, with no category of the requester's (the
    labeller's `category` is the answer, not something a requester gave); never stored."""
    appeals = []
    for n, r in enumerate(rows, 1):
        at = START + timedelta(hours=float(r.get("hour") or 0))
        appeals.append(Appeal(id=n, code=f"EVAL{n:06d}", channel=Channel.hotline,
                              appeal_type=r.get("appeal_type") or AppealType.complaint,
                              priority=r.get("priority") or "normal", title=r["title"], text=r["text"],
                              district=r.get("district"), street=r.get("street"), language=r.get("lang") or "zh",
                              status=AppealStatus.received, received_at=at, updated_at=at))
    return appeals


def dispatch_decisions(appeals: list[Appeal], ref: Reference, *, min_confidence: float,
                       model: CategoryModel | None = None, embed=None) -> list[Decision]:
    """What dispatch decides for each appeal, in their order: `dispatch.decide_all`, as a dispatch
    batch calls it. Probable twins are left out: they are open appeals of a live database."""
    decisions, failed = decide_all(appeals, ref, calendar=ref.calendar, min_confidence=min_confidence,
                                   model=model, embed=embed)
    if failed:
        raise RuntimeError(f"dispatch could not decide {len(failed)} of {len(appeals)} appeals "
                           f"(the first: {failed[0]}; see the log)")
    if model is not None and any(d.model_version is None for d, a in zip(decisions, appeals, strict=True)
                                 if not a.category_code):
        raise RuntimeError(f"the routing model {model.version} failed on this file, so dispatch would have routed "
                           "it by the keyword rules (see the log)")
    return decisions


def dispatch_figures(decisions: list[Decision], rows: list[dict]) -> dict:
    """Right, triage and silently wrong per language of what dispatch decided, and the counts; top-3
    is the department routed to or any suggestion the dispatcher is shown."""
    kinds = [_kind(d.department_code if d.action == Action.route else None, r["departments"])
             for d, r in zip(decisions, rows, strict=True)]
    top3 = [k == "correct" or any(s.department_code in r["departments"] for s in d.suggestions)
            for k, d, r in zip(kinds, decisions, rows, strict=True)]
    counts = Counter(kinds)
    return dict(by_lang=_tally(kinds, rows, top3),
                counts=dict(correct=counts["correct"], triage=counts["triage"], wrong=counts["wrong"]))


def dispatch_keyword_figures(rows: list[dict], ref: Reference, min_confidence: float) -> dict:
    """The keyword rules as dispatch applies them without a model (`dispatch.decide` with no verdict):
    a vote below the minimum confidence, and a tie between themes, go to triage."""
    return dispatch_figures(dispatch_decisions(as_received(rows), ref, min_confidence=min_confidence), rows)


def judge_active(rows: list[dict], ref: Reference, model: CategoryModel, embed, min_confidence: float) -> dict:
    """The model judging every appeal once, as dispatch would route with it: no training, no folds."""
    return dispatch_figures(dispatch_decisions(as_received(rows), ref, min_confidence=min_confidence, model=model,
                                               embed=embed), rows)


def run_active(rows: list[dict], ref: Reference, model: CategoryModel | None, *, embed,
               min_confidence: float) -> dict:
    """The active model (None: the routing model is off, the keyword rules route alone) and the keyword
    rules, each as dispatch decides, on the same appeals."""
    keyword = dispatch_keyword_figures(rows, ref, min_confidence)
    active = judge_active(rows, ref, model, embed, min_confidence) if model is not None else keyword
    return dict(mode="active", appeals=len(rows), model=model.version if model is not None else "off",
                embedder=model.embedder if model is not None else None,
                trained_on=model.trained_on if model is not None else 0, min_confidence=min_confidence,
                keyword_rules=keyword, active=active)


def _summary(figures: dict) -> dict:
    f = figures["by_lang"]["all"]
    return dict(correct=round(f["correct"], 4), triage=round(f["triage"], 4),
                silently_wrong=round(f["silently_wrong"], 4), top3=round(f["top3"], 4),
                urgent_wrong=f["urgent_wrong"], counts=figures["counts"])


def active_report(result: dict) -> list[str]:
    label = result["model"]
    if label == "off":
        who = "the keyword rules alone (the routing model is off)"
    else:
        who = (f"the active model {label} ({result['embedder']}, head trained on {result['trained_on']} "
               "confirmed appeals)" if label != "zero-shot" else
               f"the zero-shot model ({result['embedder']}; no version is active, dispatch builds this one)")
    lines = [f"Routing on {result['appeals']} labelled appeals as dispatch decides them, by {who}; nothing "
             f"trained on them (fractions of all appeals; minimum keyword confidence {result['min_confidence']})",
             TABLE_HEADER]
    lines += _table_rows("keyword rules (dispatch)", result["keyword_rules"]["by_lang"])
    if label != "off":
        lines += _table_rows(f"model {label}", result["active"]["by_lang"])
    lines.append(json.dumps(dict(mode="active", model=label, embedder=result["embedder"], appeals=result["appeals"],
                                 **_summary(result["active"]), keyword_rules=_summary(result["keyword_rules"]))))
    return lines
