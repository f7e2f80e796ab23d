"""Training and calibration of the routing model on confirmed appeals: the outcome a set of
verdicts scores against its labels, the grid search of weights and threshold on held-out evidence,
and the seeded split two models are compared on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appealflow.models.routing.classifier import CategoryModel, Evidence, Item, Params, Verdict, decide
from appealflow.models.routing.keywords import Catalogue


@dataclass(frozen=True)
class Labelled:
    item: Item
    departments: tuple[str, ...]  # every acceptable one; empty: only a person can place it
    category: str | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Outcome:
    correct: int
    triage: int
    wrong: int
    urgent_wrong: int
    top3: int
    total: int

    def score(self) -> float:
        # A silent error costs a citizen days; a triage costs a dispatcher a minute.
        return (self.correct - 10 * self.wrong - 25 * self.urgent_wrong) / max(self.total, 1)


def outcome(verdicts: list[Verdict], labelled: list[Labelled]) -> Outcome:
    correct = triage = wrong = urgent_wrong = top3 = 0
    for v, lab in zip(verdicts, labelled, strict=True):
        if any(s.department_code in lab.departments for s in v.suggestions):
            top3 += 1
        if not v.decided:
            triage += 1
        elif v.top is not None and v.top.department_code in lab.departments:
            correct += 1
        else:
            wrong += 1
            urgent_wrong += lab.urgent
    return Outcome(correct, triage, wrong, urgent_wrong, top3, len(labelled))


GRID_SCALE = (30.0, 50.0, 80.0)


GRID_KEYWORD = (0.0, 1.0, 2.0)


GRID_HEAD = (0.5, 1.0, 2.0)


GRID_THRESHOLD = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


GRID_MARGIN = (0.1, 0.2, 0.3, 0.5)


def calibrate(model: CategoryModel, catalogue: Catalogue, labelled: list[Labelled], evidence: Evidence,
              *, max_wrong: float = 0.015) -> tuple[Params, Outcome]:
    """The weights and threshold that place the most appeals while keeping silent errors under
    `max_wrong` (and none urgent) on these labelled appeals; failing that, the safest. The evidence
    must be out-of-fold (see `held_out_evidence`): a head judging the appeals it was trained on is
    sure of itself, and a threshold set there would route too much."""
    items = [lab.item for lab in labelled]
    best: tuple[tuple, Params, Outcome] | None = None
    for scale in GRID_SCALE:
        for kw in GRID_KEYWORD:
            for hw in GRID_HEAD:
                base = decide(model.labels, catalogue, items, evidence, Params(scale, kw, 0.0, 0.0, hw))
                probs = [[s.probability for s in v.suggestions] for v in base]
                for threshold in GRID_THRESHOLD:
                    for margin in GRID_MARGIN:
                        decided = [bool(p) and p[0] >= threshold and (len(p) == 1 or p[0] - p[1] >= margin)
                                   for p in probs]
                        o = outcome([Verdict(v.suggestions, d) for v, d in zip(base, decided, strict=True)],
                                    labelled)
                        ok = o.wrong <= max_wrong * o.total and o.urgent_wrong == 0
                        key = (ok, o.correct if ok else -o.wrong, -o.wrong)
                        if best is None or key > best[0]:
                            best = (key, Params(scale, kw, threshold, margin, hw), o)
    assert best is not None
    return best[1], best[2]


def held_out_evidence(model: CategoryModel, catalogue: Catalogue, labelled: list[Labelled], vectors: np.ndarray,
                      groups: list[str], folds: int = 4) -> Evidence:
    """Evidence for each labelled appeal from a head trained without it (nor its duplicates)."""
    fold = group_folds(groups, folds)
    parts = []
    for f in range(folds):
        train_rows, test_rows = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if not len(test_rows):
            continue
        m = model.with_history(vectors[train_rows], [labelled[i].category for i in train_rows])
        parts.append((test_rows, m.evidence(catalogue, [labelled[i].item for i in test_rows], vectors[test_rows])))
    return Evidence.stack(parts, len(labelled))


def group_folds(groups: list[str], folds: int) -> np.ndarray:
    """Fold numbers that keep each group (a matter's duplicates) whole."""
    order = {g: n % folds for n, g in enumerate(dict.fromkeys(groups))}
    return np.array([order[g] for g in groups], dtype=np.int32)


def fit(model: CategoryModel, catalogue: Catalogue, labelled: list[Labelled], vectors: np.ndarray,
        groups: list[str] | None = None) -> tuple[CategoryModel, Outcome]:
    """A model trained on these confirmed appeals: its weights and threshold calibrated on
    held-out evidence, then its head trained on all of them."""
    groups = groups or [str(i) for i in range(len(labelled))]
    evidence = held_out_evidence(model, catalogue, labelled, vectors, groups)
    params, fitted = calibrate(model, catalogue, labelled, evidence)
    trained = model.with_history(vectors, [lab.category for lab in labelled])
    trained.params = params
    return trained, fitted


def split(labelled: list[Labelled], holdout: float = 0.3, seed: int = 15) -> tuple[list[int], list[int]]:
    """A fixed, seeded split, so two models are compared on the same held-out appeals."""
    order = np.random.default_rng(seed).permutation(len(labelled))
    cut = int(len(order) * (1 - holdout))
    return sorted(order[:cut].tolist()), sorted(order[cut:].tolist())
