"""The learned answer chooser: a logistic model over per-candidate features, stored as JSON.

Each candidate gets ``p = sigmoid(w . standardized(features) + b)``, fitted with the candidate's
VQA score as a soft target (L2-regularized cross-entropy, L-BFGS); the question's answer is the
candidate with the highest ``p`` (ties: the earlier candidate, greedy answers come first). The
regularization strength is picked by cross-validation over question groups of the fitting data.
The file holds plain numbers (no pickle): feature names, means, scales, coefficients, intercept,
what it was fitted for (LLM, template, shots, candidate M and K) and its training figures.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pica.candidates import FEATURES
from pica.errors import InputError

FORMAT = "pica-chooser"
VERSION = 1
CHOOSER_DIR = "choosers"
# What a chooser must match to be used, in the order mismatches are reported.
MATCH_KEYS = ("llm", "template", "shots", "candidate_answers", "candidate_neighbours")
L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass
class Chooser:
    """A fitted logistic chooser.

    Attributes:
        features: Feature names, in coefficient order.
        mean, scale: Standardization of each feature.
        coef, intercept: The logistic model on standardized features.
        fitted_for: The values of :data:`MATCH_KEYS` it was fitted with.
        training: Training figures (questions, held-back accuracy, time, regularization).
    """

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    fitted_for: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def matrix(self, cands: Sequence[dict[str, Any]]) -> np.ndarray:
        """The standardized feature matrix of ``cands`` (each with ``features``)."""
        x = np.array([[c["features"][f] for f in self.features] for c in cands], dtype=np.float64)
        return (x.reshape(len(cands), len(self.features)) - np.asarray(self.mean)) / np.asarray(self.scale)

    def scores(self, cands: Sequence[dict[str, Any]]) -> list[float]:
        """Probability that each candidate is right."""
        if not cands:
            return []
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
        return {"format": FORMAT, "version": VERSION, "model": "logistic", "features": self.features,
                "mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
                "fitted_for": self.fitted_for, "training": self.training}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "chooser") -> Chooser:
        """Check and read a chooser object.

        Raises:
            InputError: wrong format, version or features, or inconsistent lengths.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{where} is not a pica chooser file;"
                             " re-fit with `pica index calibrate --overwrite`")
        if data.get("version") != VERSION:
            raise InputError(f"{where} has chooser version {data.get('version')!r}, this pica reads"
                             f" {VERSION}; re-fit with `pica index calibrate --overwrite`")
        try:
            chooser = cls(features=list(data["features"]), mean=[float(v) for v in data["mean"]],
                          scale=[float(v) for v in data["scale"]], coef=[float(v) for v in data["coef"]],
                          intercept=float(data["intercept"]), fitted_for=dict(data["fitted_for"]),
                          training=dict(data.get("training", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where} is corrupt ({type(e).__name__}: {e}); re-fit with"
                             " `pica index calibrate --overwrite`") from e
        unknown = [f for f in chooser.features if f not in FEATURES]
        n = len(chooser.features)
        if unknown or not (len(chooser.mean) == len(chooser.scale) == len(chooser.coef) == n):
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
    how = (f"pica index calibrate {index_path} --llm ... --template {wanted.get('template')}"
           f" --shots {wanted.get('shots')}")
    if others:
        other = min(others, key=lambda c: sum(c.fitted_for.get(k) != wanted.get(k) for k in MATCH_KEYS))
        k = next(k for k in MATCH_KEYS if other.fitted_for.get(k) != wanted.get(k))
        raise InputError(f"--choose learned: index {index_path} has no chooser for {k} {wanted.get(k)!r}"
                         f" (its chooser was fitted for {k} {other.fitted_for.get(k)!r}); run `{how}`")
    raise InputError(f"--choose learned: index {index_path} has no fitted chooser; run `{how}`")


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


def accuracy(groups: Sequence[np.ndarray], targets: Sequence[np.ndarray], w: np.ndarray, b: float) -> float:
    """Mean score of the argmax candidate per question (first wins ties), in [0, 1]."""
    total = 0.0
    for x, y in zip(groups, targets):
        if len(y):
            total += float(y[int(np.argmax(x @ w + b))])
    return total / max(len(groups), 1)


def fit(questions: Sequence[list[dict[str, Any]]], folds: int = 5, seed: int = 0) -> Chooser:
    """Fit a chooser on questions' candidate lists (each candidate with ``features`` and ``target``).

    The L2 strength is chosen from :data:`L2_GRID` by ``folds``-fold cross-validated accuracy over
    questions; the final model is fitted on all of them.
    """
    usable = [q for q in questions if q]
    raw = [np.array([[c["features"][f] for f in FEATURES] for c in q], dtype=np.float64) for q in usable]
    targets = [np.array([c["target"] for c in q], dtype=np.float64) for q in usable]
    stacked = np.concatenate(raw) if raw else np.zeros((0, len(FEATURES)))
    mean = stacked.mean(axis=0) if len(stacked) else np.zeros(len(FEATURES))
    scale = stacked.std(axis=0) if len(stacked) else np.ones(len(FEATURES))
    scale[scale < 1e-9] = 1.0
    groups = [(x - mean) / scale for x in raw]
    fold_of = np.random.default_rng(seed).permutation(len(groups)) % folds
    cv = {}
    for l2 in L2_GRID:
        acc = 0.0
        for f in range(folds):
            train = [i for i in range(len(groups)) if fold_of[i] != f]
            test = [i for i in range(len(groups)) if fold_of[i] == f]
            if not train or not test:
                continue
            w, b = fit_logistic(np.concatenate([groups[i] for i in train]),
                                np.concatenate([targets[i] for i in train]), l2)
            acc += accuracy([groups[i] for i in test], [targets[i] for i in test], w, b) * len(test)
        cv[l2] = acc / max(len(groups), 1)
    best = max(L2_GRID, key=lambda v: (round(cv[v], 9), v))  # ties: stronger regularization
    w, b = fit_logistic(np.concatenate(groups) if groups else np.zeros((0, len(FEATURES))),
                        np.concatenate(targets) if targets else np.zeros(0), best)
    return Chooser(features=list(FEATURES), mean=mean.tolist(), scale=scale.tolist(), coef=w.tolist(),
                   intercept=b, training={"l2": best, "cv_accuracy": {str(k): round(100 * v, 2)
                                                                      for k, v in cv.items()}})
