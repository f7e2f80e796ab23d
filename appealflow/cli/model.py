"""`appealflow model train|evaluate|promote|rollback|list` and `appealflow qa import|search`."""

from __future__ import annotations

import argparse
from pathlib import Path

from appealflow.settings import get_settings


def _backend() -> str:
    return get_settings().embedding_backend


def cmd_evaluate(args: argparse.Namespace) -> None:
    if args.active:
        cmd_evaluate_active(args)
        return
    from appealflow.models.routing.classifier import embedder
    from appealflow.models.routing.classifier_store import zero_shot
    from appealflow.models.routing.evaluation import EVAL_DIR, catalogue_from, report, run

    settings = get_settings()
    _, texts = catalogue_from()
    model = zero_shot(texts, _backend(), settings.model_cache_dir)
    result = run(Path(args.data) if args.data else EVAL_DIR / "appeals.jsonl", embed=embedder(_backend()).embed,
                 model=model, limit=args.limit, folds=args.folds or 5,
                 qa_base=Path(args.qa_base) if args.qa_base else None,
                 qa_queries=Path(args.qa_queries) if args.qa_queries else None)
    print("\n".join(report(result)))


def cmd_evaluate_active(args: argparse.Namespace) -> None:
    """The routing model dispatch runs with, and its keyword rules, judged once on the file."""
    from appealflow.models.city.reference import read_reference
    from appealflow.models.routing.classifier import embedder
    from appealflow.models.routing.evaluation import EVAL_DIR, active_report, dispatch_model, read_labelled, run_active
    from appealflow.models.storage.db import session_scope

    unused = [name for name, given in (("--folds", args.folds), ("--qa-base", args.qa_base),
                                       ("--qa-queries", args.qa_queries)) if given is not None]
    if unused:
        raise SystemExit(f"{', '.join(unused)}: not with --active (it trains nothing and measures routing only)")
    settings = get_settings()
    rows = read_labelled(Path(args.data) if args.data else EVAL_DIR / "appeals.jsonl")[:args.limit or None]
    with session_scope(settings.sqlalchemy_url) as session:
        ref = read_reference(session, hours=settings.working_hours, zone=settings.timezone)
        if not ref.catalogue.categories:
            raise SystemExit("the database has no category tree: `appealflow migrate` and `appealflow seed` first")
        try:
            model = dispatch_model(session, settings.routing_model, settings.model_cache_dir)
        except ValueError as error:
            raise SystemExit(str(error)) from None
    embed = embedder(settings.routing_model).embed if model is not None else None
    result = run_active(rows, ref, model, embed=embed, min_confidence=settings.routing_min_confidence)
    print("\n".join(active_report(result)))


def cmd_train(args: argparse.Namespace) -> None:
    from appealflow.models.city.reference import read_reference
    from appealflow.models.routing.classifier_store import confirmed_history, train
    from appealflow.models.routing.evaluation import labelled, read_labelled
    from appealflow.models.storage.db import session_scope

    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        catalogue = read_reference(session).catalogue
        data = labelled(read_labelled(Path(args.data))) if args.data else confirmed_history(session, catalogue)
        r = train(session, catalogue, data, backend=_backend(), promote_if_better=not args.no_promote,
                  cache_dir=settings.model_cache_dir)
        print(f"trained {r.candidate.label} on {len(data)} appeals; held-out: candidate "
              f"{r.candidate_holdout.correct}/{r.candidate_holdout.total} right, {r.candidate_holdout.wrong} wrong; "
              f"active {r.active_label} {r.active_holdout.correct} right, {r.active_holdout.wrong} wrong")
        print(f"{r.candidate.label} promoted" if r.promoted else f"{r.active_label} stays active")


def cmd_promote(args: argparse.Namespace) -> None:
    from appealflow.models.routing.classifier_store import promote
    from appealflow.models.storage.db import session_scope

    with session_scope(get_settings().sqlalchemy_url) as session:
        print(f"{promote(session, int(args.version.lstrip('v'))).label} is active")


def cmd_rollback(_args: argparse.Namespace) -> None:
    from appealflow.models.routing.classifier_store import rollback
    from appealflow.models.storage.db import session_scope

    with session_scope(get_settings().sqlalchemy_url) as session:
        print(f"rolled back: {rollback(session).label} is active")


def cmd_list(_args: argparse.Namespace) -> None:
    from appealflow.models.routing.classifier_store import versions
    from appealflow.models.storage.db import session_scope

    with session_scope(get_settings().sqlalchemy_url) as session:
        for v in versions(session):
            print(f"{v.label:6} {v.status:10} {v.embedder:9} trained on {v.trained_on:6}  {v.metrics.get('kind')}")


def cmd_qa_import(args: argparse.Namespace) -> None:
    from appealflow.models.routing.classifier import embedder
    from appealflow.models.routing.policy_qa import import_base, parse
    from appealflow.models.storage.db import session_scope

    path = Path(args.file)
    entries = parse(path.read_text(encoding="utf-8"), "csv" if path.suffix.lower() == ".csv" else "json")
    with session_scope(get_settings().sqlalchemy_url) as session:
        n = import_base(session, entries, embedder(_backend()).embed)
    print(f"imported {n} Q&A entries from {path}")


def _at_least_two(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: folds are a whole number, at least 2")
    return int(text)


def register_model_cli(commands) -> None:
    model = commands.add_parser("model", help="the routing model: evaluate, train, promote, roll back")
    sub = model.add_subparsers(required=True)
    p = sub.add_parser("evaluate", help="routing, duplicates and Q&A on a labelled file, next to the keyword rules")
    p.add_argument("--data", help="JSON lines of labelled appeals (default tests/eval/appeals.jsonl)")
    p.add_argument("--limit", type=int, help="only the first N appeals")
    p.add_argument("--folds", type=_at_least_two, help="cross-validation folds (default 5)")
    p.add_argument("--qa-base", help="a Q&A base (CSV or JSON) for the search figures")
    p.add_argument("--qa-queries", help="JSON lines of {query, expected question or null}")
    p.add_argument("--active", action="store_true",
                   help="judge the model dispatch runs (the active stored version, else the zero-shot one) and the "
                        "keyword rules as dispatch applies them, once on the file: no training, no folds")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("train", help="calibrate a new version on confirmed history (or --data); promote if better")
    p.add_argument("--data", help="JSON lines of labelled appeals instead of the database's history")
    p.add_argument("--no-promote", action="store_true", help="keep it as a candidate whatever it scores")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("promote", help="make a version active")
    p.add_argument("version", help="v3 or 3")
    p.set_defaults(func=cmd_promote)
    sub.add_parser("rollback", help="back to the previously active version").set_defaults(func=cmd_rollback)
    sub.add_parser("list", help="the versions").set_defaults(func=cmd_list)
    qa = commands.add_parser("qa", help="the policy Q&A base").add_subparsers(required=True)
    p = qa.add_parser("import", help="replace the base with a CSV or JSON file")
    p.add_argument("file")
    p.set_defaults(func=cmd_qa_import)
