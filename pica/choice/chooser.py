"""The learned answer chooser: a small model over per-candidate features, stored as JSON.

Two models, both fitted with each candidate's VQA score as the target; the question's answer is
the candidate with the highest score (ties: the earlier candidate, greedy answers come first):

- ``logistic``: ``sigmoid(w . standardized(features) + b)``, L2-regularized cross-entropy with
  soft targets (L-BFGS), the L2 strength picked by cross-validation;
- ``trees``: gradient-boosted regression trees (scikit-learn's ``GradientBoostingRegressor``,
  squared error, depth 3), exported node by node and evaluated here with numpy.

``fit(model="auto")`` cross-validates both over question groups of the fitting data and keeps the
better (on the OK-VQA pool with the packaged 270M model: trees, see BENCHMARKS.md). The file holds
plain numbers (no pickle, no joblib): feature names, the model's coefficients or trees, what it
was fitted for (LLM, template, shots, candidate M and K), its training figures and its verdict
(whether ``--choose auto`` may use it, :mod:`pica.choice.trust`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pica.choice.candidates import FEATURES
from pica.choice.trust import read_verdict
from pica.config import DEFAULT_CANDIDATE_ANSWERS, DEFAULT_CANDIDATE_NEIGHBOURS
from pica.errors import InputError

FORMAT = "pica-chooser"
VERSION = 2
READS = (1, 2)  # version 1: logistic only, same fields
MODELS = ("logistic", "trees")
CHOOSER_DIR = "choosers"
# What a chooser must match to be used, in the order mismatches are reported.
MATCH_KEYS = ("llm", "template", "shots", "candidate_answers", "candidate_neighbours", "candidate_scoring")
L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
# Gradient-boosted trees: measured on pool candidate tables (bench/chooser_models.py); depth 2-4,
# 100-300 trees and rates 0.05-0.1 were within noise of each other.
TREES = {"max_depth": 3, "n_estimators": 300, "learning_rate": 0.05, "subsample": 0.8}


@dataclass
class Chooser:
    """A fitted chooser.

    Attributes:
        features: Feature names, in coefficient order.
        mean, scale: Standardization of each feature (logistic; trees use raw features).
        coef, intercept: The logistic model on standardized features; for trees ``coef`` is empty
            and ``intercept`` is the initial prediction.
        fitted_for: The values of :data:`MATCH_KEYS` it was fitted with.
        training: Training figures (questions, held-back accuracy, time, model selection).
        model: ``logistic`` or ``trees``.
        trees: For ``trees``: each tree as parallel node lists ``feature``, ``threshold``,
            ``left``, ``right`` (-1 at leaves) and ``value``; go left when ``x <= threshold``.
        learning_rate: For ``trees``: the weight of each tree's value.
        verdict: Whether ``--choose auto`` uses it (:func:`pica.choice.trust.judge`): ``trusted``,
            ``gain``, ``se``, ``n``, ``rule``, ``reason``; read from the file, or judged from
            ``training`` for files that have none.
    """

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    fitted_for: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    model: str = "logistic"
    trees: list[dict[str, list]] = field(default_factory=list)
    learning_rate: float = 0.0
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        """Whether ``--choose auto`` uses this chooser (its verdict, else the rule on its figures)."""
        return bool((self.verdict or read_verdict(None, self.training))["trusted"])

    def raw(self, cands: Sequence[dict[str, Any]]) -> np.ndarray:
        """The unstandardized feature matrix of ``cands`` (each with ``features``)."""
        x = np.array([[c["features"][f] for f in self.features] for c in cands], dtype=np.float64)
        return x.reshape(len(cands), len(self.features))

    def matrix(self, cands: Sequence[dict[str, Any]]) -> np.ndarray:
        """The standardized feature matrix of ``cands`` (each with ``features``)."""
        return (self.raw(cands) - np.asarray(self.mean)) / np.asarray(self.scale)

    def scores(self, cands: Sequence[dict[str, Any]]) -> list[float]:
        """Each candidate's score: the probability that it is right (logistic) or its expected
        VQA score (trees)."""
        if not cands:
            return []
        if self.model == "trees":
            return [float(v) for v in predict_trees(self.trees, self.learning_rate, self.intercept,
                                                    self.raw(cands))]
        z = self.matrix(cands) @ np.asarray(self.coef) + self.intercept
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]

    def pick(self, cands: Sequence[dict[str, Any]]) -> int:
        """Index of the winning candidate (adds ``score`` to each)."""
        for cand, p in zip(cands, self.scores(cands)):
            cand["score"] = round(p, 6)
        return max(range(len(cands)), key=lambda i: (cands[i]["score"], -i))

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        out = {"format": FORMAT, "version": VERSION, "model": self.model, "features": self.features,
               "mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
               "fitted_for": self.fitted_for, "training": self.training}
        if self.verdict:
            out["verdict"] = self.verdict
        if self.model == "trees":
            out.update(learning_rate=self.learning_rate, trees=self.trees)
        return out

    def dumps(self) -> str:
        """The file's text: indented, with one line per tree."""
        data = self.to_dict()
        trees = data.pop("trees", None)
        text = json.dumps(data, indent=1)
        if trees is None:
            return text + "\n"
        body = ",\n  ".join(json.dumps(t, separators=(",", ":")) for t in trees)
        return text[:-2] + ',\n "trees": [\n  ' + body + "\n ]\n}\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "chooser") -> Chooser:
        """Check and read a chooser object.

        Raises:
            InputError: wrong format, version or features, or inconsistent lengths.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{where} is not a pica chooser file;"
                             " re-fit with `pica index calibrate --overwrite`")
        if data.get("version") not in READS:
            raise InputError(f"{where} has chooser version {data.get('version')!r}, this pica reads"
                             f" {', '.join(map(str, READS))}; re-fit with `pica index calibrate --overwrite`")
        model = data.get("model", "logistic")
        if model not in MODELS:
            raise InputError(f"{where} has an unknown chooser model {model!r};"
                             " re-fit with `pica index calibrate --overwrite`")
        try:
            chooser = cls(features=list(data["features"]), mean=[float(v) for v in data["mean"]],
                          scale=[float(v) for v in data["scale"]], coef=[float(v) for v in data["coef"]],
                          intercept=float(data["intercept"]), fitted_for=_fitted_for(data["fitted_for"]),
                          training=dict(data.get("training", {})), model=model)
            chooser.verdict = read_verdict(data.get("verdict"), chooser.training)
            if model == "trees":
                chooser.learning_rate = float(data["learning_rate"])
                chooser.trees = [_read_tree(t, len(chooser.features)) for t in data["trees"]]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(f"{where} is corrupt ({type(e).__name__}: {e}); re-fit with"
                             " `pica index calibrate --overwrite`") from e
        unknown = [f for f in chooser.features if f not in FEATURES]
        n = len(chooser.features)
        lengths = [len(chooser.mean), len(chooser.scale)] + ([] if model == "trees" else [len(chooser.coef)])
        if unknown or any(k != n for k in lengths):
            what = f"unknown feature '{unknown[0]}'" if unknown else "lengths disagree"
            raise InputError(f"{where} is corrupt ({what});"
                             " re-fit with `pica index calibrate --overwrite`")
        return chooser

    @classmethod
    def load(cls, path: Path) -> Chooser:
        """Read a chooser file. Raises ``InputError`` (one line) when missing or corrupt."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"chooser file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"chooser file {path} is corrupt ({type(e).__name__});"
                             " re-fit with `pica index calibrate --overwrite`") from e
        return cls.from_dict(data, where=f"chooser file {path}")


def _fitted_for(value: dict[str, Any]) -> dict[str, Any]:
    """A file's ``fitted_for``; files from before ``candidate_scoring`` was recorded scored each
    candidate with the template's end of answer (``answer+end``)."""
    return {"candidate_scoring": "answer+end", **dict(value)}


def chooser_key(fitted_for: dict[str, Any]) -> str:
    """File stem of a chooser: readable LLM/template/shots plus a hash of everything it matches."""
    text = json.dumps({k: fitted_for.get(k) for k in MATCH_KEYS}, sort_keys=True)
    template = Path(str(fitted_for.get("template"))).stem
    name = f"{fitted_for.get('llm')}-{template}-{fitted_for.get('shots')}shots"
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")[:80]
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def chooser_path(index_path: Path, fitted_for: dict[str, Any]) -> Path:
    """Where the chooser for ``fitted_for`` lives in an index folder."""
    return Path(index_path) / CHOOSER_DIR / f"{chooser_key(fitted_for)}.json"


def list_choosers(index_path: Path) -> list[tuple[Path, Chooser | None, str | None]]:
    """Every chooser file of an index: ``(path, chooser or None, error or None)``."""
    folder = Path(index_path) / CHOOSER_DIR
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append((path, Chooser.load(path), None))
        except InputError as e:
            out.append((path, None, str(e)))
    return out


def find_chooser(index_path: Path, wanted: dict[str, Any], required: bool) -> tuple[Chooser, str] | None:
    """The chooser of ``index_path`` fitted for ``wanted`` and its sha256, if any.

    Raises:
        InputError: (only when ``required``) none fits; the message names what mismatches.
    """
    path = chooser_path(index_path, wanted)
    if path.is_file():
        chooser = Chooser.load(path)
        bad = [k for k in MATCH_KEYS if chooser.fitted_for.get(k) != wanted.get(k)]
        if not bad:
            return chooser, hashlib.sha256(path.read_bytes()).hexdigest()
        if required:
            k = bad[0]
            raise InputError(f"chooser file {path} was fitted for {k} {chooser.fitted_for.get(k)!r}"
                             f" but {wanted.get(k)!r} is in use;"
                             " re-fit with `pica index calibrate --overwrite`")
        return None
    if not required:
        return None
    others = [c for _, c, _ in list_choosers(index_path) if c is not None]
    how = calibrate_command(index_path, wanted)
    if others:
        other = min(others, key=lambda c: sum(c.fitted_for.get(k) != wanted.get(k) for k in MATCH_KEYS))
        k = next(k for k in MATCH_KEYS if other.fitted_for.get(k) != wanted.get(k))
        raise InputError(f"--choose learned: index {index_path} has no chooser for {k} {wanted.get(k)!r}"
                         f" (its chooser was fitted for {k} {other.fitted_for.get(k)!r}); run `{how}`")
    raise InputError(f"--choose learned: index {index_path} has no fitted chooser; run `{how}`")


def calibrate_command(index_path: Path, wanted: dict[str, Any]) -> str:
    """The ``pica index calibrate`` command line that fits a chooser for ``wanted`` (the settings
    in use, as :meth:`~pica.pipeline.Pipeline.chooser_target` gives them), shell-quoted.

    ``--candidate-answers`` and ``--candidate-neighbours`` are named only when they differ from
    the defaults; an API model (``MODEL@URL``) becomes ``--llm MODEL --api-base URL``.
    """
    llm, _, api_base = str(wanted.get("llm")).partition("@")
    parts = ["pica", "index", "calibrate", str(index_path), "--llm", llm]
    if api_base:
        parts += ["--api-base", api_base]
    parts += ["--template", str(wanted.get("template")), "--shots", str(wanted.get("shots"))]
    for key, default in (("candidate_answers", DEFAULT_CANDIDATE_ANSWERS),
                         ("candidate_neighbours", DEFAULT_CANDIDATE_NEIGHBOURS)):
        if wanted.get(key, default) != default:
            parts += [f"--{key.replace('_', '-')}", str(wanted[key])]
    return shlex.join(parts)


def _read_tree(tree: dict[str, Any], n_features: int) -> dict[str, list]:
    """Check one tree of a file: equal-length node lists, children and features in range."""
    keys = ("feature", "threshold", "left", "right", "value")
    nodes = {k: list(tree[k]) for k in keys}
    size = len(nodes["value"])
    if size == 0 or any(len(v) != size for v in nodes.values()):
        raise ValueError("tree node lists differ in length")
    for i in range(size):
        left, right = int(nodes["left"][i]), int(nodes["right"][i])
        if left == -1:
            continue
        if not (i < left < size and i < right < size and 0 <= int(nodes["feature"][i]) < n_features):
            raise ValueError(f"tree node {i} points outside the tree")
    return nodes


def predict_trees(trees: Sequence[dict[str, list]], rate: float, init: float, x: np.ndarray) -> np.ndarray:
    """``init + rate * sum(tree(x))`` for each row of ``x`` (children always follow their parent,
    so a walk ends within the tree's size)."""
    total = np.full(len(x), init, dtype=np.float64)
    rows = np.arange(len(x))
    for tree in trees:
        feature, threshold = np.asarray(tree["feature"], dtype=np.int64), np.asarray(tree["threshold"])
        left, right = np.asarray(tree["left"], dtype=np.int64), np.asarray(tree["right"], dtype=np.int64)
        node = np.zeros(len(x), dtype=np.int64)
        for _ in range(len(left)):
            inner = left[node] >= 0
            if not inner.any():
                break
            at = node[inner]
            go_left = x[rows[inner], feature[at]] <= threshold[at]
            node[inner] = np.where(go_left, left[at], right[at])
        total += rate * np.asarray(tree["value"], dtype=np.float64)[node]
    return total


def export_trees(model) -> list[dict[str, list]]:
    """The trees of a fitted ``GradientBoostingRegressor`` as node lists (public ``tree_`` arrays)."""
    out = []
    for estimator in model.estimators_[:, 0]:
        t = estimator.tree_
        leaf = t.children_left < 0
        out.append({"feature": [-1 if is_leaf else int(v) for v, is_leaf in zip(t.feature, leaf)],
                    "threshold": [0.0 if is_leaf else round(float(v), 6)
                                  for v, is_leaf in zip(t.threshold, leaf)],
                    "left": [int(v) for v in t.children_left], "right": [int(v) for v in t.children_right],
                    "value": [round(float(v), 8) for v in t.value[:, 0, 0]]})
    return out


# -- fitting ------------------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression with soft targets ``y`` in [0, 1] (x standardized)."""
    from scipy.optimize import minimize

    n, d = x.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = x @ w + b
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(w @ w)
        r = 1.0 / (1.0 + np.exp(-z)) - y
        return value, np.concatenate([x.T @ r + l2 * w, [r.sum()]])

    result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B")
    return result.x[:d], float(result.x[d])


def fit_trees(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[list[dict[str, list]], float, float]:
    """Gradient-boosted regression trees (:data:`TREES`) on raw features: ``(trees, rate, init)``."""
    try:
        from sklearn.ensemble import GradientBoostingRegressor
    except ImportError as e:  # a dependency of pica; only a broken environment lacks it
        raise InputError("the trees chooser needs scikit-learn: pip install 'scikit-learn>=1.3'") from e
    model = GradientBoostingRegressor(random_state=seed, **TREES).fit(x, y)
    return export_trees(model), float(model.learning_rate), float(model.init_.constant_.ravel()[0])


def accuracy(groups: Sequence[np.ndarray], targets: Sequence[np.ndarray],
             score: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean target of each question's highest-scoring candidate (first wins ties), in [0, 1]."""
    total = sum(float(y[int(np.argmax(score(x)))]) for x, y in zip(groups, targets) if len(y))
    return total / max(len(groups), 1)


def check_model(model: str) -> None:
    """Raise ``InputError`` unless ``model`` is ``auto`` or one of :data:`MODELS`."""
    if model not in ("auto", *MODELS):
        raise InputError(f"unknown chooser model {model!r}; use auto, logistic or trees")


def fit(questions: Sequence[list[dict[str, Any]]], folds: int = 5, seed: int = 0,
        model: str = "auto") -> Chooser:
    """Fit a chooser on questions' candidate lists (each candidate with ``features`` and ``target``).

    ``logistic`` picks its L2 strength from :data:`L2_GRID` by ``folds``-fold cross-validated
    accuracy over questions; ``auto`` also cross-validates the trees on the same folds and keeps
    the better model. The final model is fitted on all questions.
    """
    check_model(model)
    usable = [q for q in questions if q]
    raw = [np.array([[c["features"][f] for f in FEATURES] for c in q], dtype=np.float64) for q in usable]
    targets = [np.array([c["target"] for c in q], dtype=np.float64) for q in usable]
    stacked = np.concatenate(raw) if raw else np.zeros((0, len(FEATURES)))
    mean = stacked.mean(axis=0) if len(stacked) else np.zeros(len(FEATURES))
    scale = stacked.std(axis=0) if len(stacked) else np.ones(len(FEATURES))
    scale[scale < 1e-9] = 1.0
    groups = [(x - mean) / scale for x in raw]
    fold_of = np.random.default_rng(seed).permutation(len(groups)) % folds
    everyone = range(len(groups))
    splits = [([i for i in everyone if fold_of[i] != f], [i for i in everyone if fold_of[i] == f])
              for f in range(folds)]
    splits = [(train, test) for train, test in splits if train and test]
    cv: dict[str, float] = {}
    if model in ("auto", "logistic"):
        for l2 in L2_GRID:
            acc = 0.0
            for train, test in splits:
                w, b = fit_logistic(np.concatenate([groups[i] for i in train]),
                                    np.concatenate([targets[i] for i in train]), l2)
                acc += accuracy([groups[i] for i in test], [targets[i] for i in test],
                                lambda x, w=w, b=b: x @ w + b) * len(test)
            cv[f"logistic l2={l2}"] = acc / max(len(groups), 1)
    if model in ("auto", "trees") and len(groups) >= 2:
        acc = 0.0
        for train, test in splits:
            fitted = fit_trees(np.concatenate([raw[i] for i in train]),
                               np.concatenate([targets[i] for i in train]), seed)
            acc += accuracy([raw[i] for i in test], [targets[i] for i in test],
                            lambda x, fitted=fitted: predict_trees(*fitted, x)) * len(test)
        cv["trees"] = acc / max(len(groups), 1)
    best_l2 = max(L2_GRID, key=lambda v: (round(cv.get(f"logistic l2={v}", -1.0), 9), v))  # ties: stronger L2
    use_trees = model == "trees" or (
        model == "auto" and "trees" in cv and cv["trees"] > cv[f"logistic l2={best_l2}"])
    training = {"model_selection": model, "cv_accuracy": {k: round(100 * v, 2) for k, v in cv.items()},
                "cv_folds": folds}
    if use_trees:
        trees, rate, init = fit_trees(stacked, np.concatenate(targets) if targets else np.zeros(0), seed)
        return Chooser(features=list(FEATURES), mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES),
                       coef=[], intercept=init, training=dict(training, trees=dict(TREES)), model="trees",
                       trees=trees, learning_rate=rate)
    w, b = fit_logistic(np.concatenate(groups) if groups else np.zeros((0, len(FEATURES))),
                        np.concatenate(targets) if targets else np.zeros(0), best_l2)
    return Chooser(features=list(FEATURES), mean=mean.tolist(), scale=scale.tolist(), coef=w.tolist(),
                   intercept=b, training=dict(training, l2=best_l2))
