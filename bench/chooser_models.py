"""Compare chooser models on pool candidate tables, cross-validated by image (issue 9).

Reads the JSON lines of `bench/chooser_tables.py`, splits the questions into folds by image
(a question's image never is in both the fitting and the testing part), fits each model on the
other folds and reports the mean VQA score of its chosen answers against the greedy answer, with
the paired difference ± 1 SE. Only pool data: nothing here reads dev.

    python bench/chooser_models.py bench/out/chooser_tables/part*.jsonl
    python bench/chooser_models.py --smoke    # synthetic tables of a fake index, every mode
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SMOKE_HELP, TESTS, smoke_folder  # noqa: E402

from pica.choice.candidates import FEATURES  # noqa: E402
from pica.choice.chooser import fit as fit_chooser  # noqa: E402


def load(paths: list[Path]) -> list[dict]:
    out = []
    for path in paths:
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [q for q in out if q["candidates"]]


def recount_frequencies(questions: list[dict], index_path: str) -> int:
    """Recompute ``log_freq`` with the index (tables written before the fix of the doubly
    subtracted own answers); returns how many values changed."""
    import math

    from pica.choice.candidates import answer_counts, own_answers
    from pica.retrieval.index import ExampleIndex

    index = ExampleIndex.load(index_path)
    counts = answer_counts(index)
    changed = 0
    for q in questions:
        own = own_answers(index, index.rows_of_image(q["image"]))
        for c in q["candidates"]:
            value = round(math.log1p(max(counts.get(c["answer"], 0) - own.get(c["answer"], 0), 0)), 6)
            changed += value != c["features"]["log_freq"]
            c["features"]["log_freq"] = value
    return changed


def folds_by_image(questions: list[dict], k: int, seed: int) -> np.ndarray:
    images = sorted({q["image"] for q in questions})
    order = np.random.default_rng(seed).permutation(len(images))
    fold = {images[i]: int(j % k) for j, i in enumerate(order)}
    return np.array([fold[q["image"]] for q in questions])


def chosen_scores(pick, questions: list[dict]) -> np.ndarray:
    return np.array([q["candidates"][pick(q["candidates"])]["target"] for q in questions])


def greedy_scores(questions: list[dict]) -> np.ndarray:
    return np.array([next((c["target"] for c in q["candidates"] if c["features"]["is_greedy"]), 0.0)
                     for q in questions])


# -- models: each fit(train questions) -> pick(candidates) -> index ------------------------------
def pica_chooser(kind: str):
    """pica's own chooser, ``pica.choice.chooser.fit(model=kind)``, as calibration fits it."""
    def fit(train):
        model = fit_chooser([q["candidates"] for q in train], model=kind)
        return lambda cands: int(np.argmax(model.scores(cands)))
    return fit


def boosted(train, depth=3, n=150, rate=0.05):
    from sklearn.ensemble import GradientBoostingRegressor
    x = np.array([[c["features"][f] for f in FEATURES] for q in train for c in q["candidates"]])
    y = np.array([c["target"] for q in train for c in q["candidates"]])
    model = GradientBoostingRegressor(max_depth=depth, n_estimators=n, learning_rate=rate, subsample=0.8,
                                      random_state=0).fit(x, y)
    return lambda cands: int(np.argmax(model.predict(np.array([[c["features"][f] for f in FEATURES]
                                                                for c in cands]))))


def conditional_logit(train, l2=1.0):
    """Softmax over each question's candidates, soft targets normalized per question."""
    from scipy.optimize import minimize
    xs = [np.array([[c["features"][f] for f in FEATURES] for c in q["candidates"]]) for q in train]
    stacked = np.concatenate(xs)
    mean, scale = stacked.mean(0), stacked.std(0)
    scale[scale < 1e-9] = 1
    xs = [(x - mean) / scale for x in xs]
    ys = [np.array([c["target"] for c in q["candidates"]]) for q in train]
    keep = [i for i, y in enumerate(ys) if y.sum() > 0]
    xs, ys = [xs[i] for i in keep], [ys[i] / ys[i].sum() for i in keep]

    def loss(w):
        total, grad = 0.5 * l2 * w @ w, l2 * w
        for x, y in zip(xs, ys):
            z = x @ w
            z = z - z.max()
            p = np.exp(z) / np.exp(z).sum()
            total -= float(y @ (z - np.log(np.exp(z).sum())))
            grad = grad + x.T @ (p - y)
        return total, grad

    w = minimize(loss, np.zeros(len(FEATURES)), jac=True, method="L-BFGS-B").x

    def pick(cands):
        x = (np.array([[c["features"][f] for f in FEATURES] for c in cands]) - mean) / scale
        return int(np.argmax(x @ w))
    return pick


MODELS = {
    "pica-trees": pica_chooser("trees"),
    "pica-auto": pica_chooser("auto"),
    "logistic": pica_chooser("logistic"),
    "conditional-logit": conditional_logit,
    "trees-d2": lambda t: boosted(t, depth=2, n=200),
    "trees-d3": lambda t: boosted(t, depth=3, n=150),
}


def cross_validated(questions: list[dict], name: str, folds: int, seed: int = 0,
                    size: int | None = None) -> np.ndarray:
    """Each question's score under model ``name`` fitted on the other folds (by image), on at
    most ``size`` of their questions."""
    fold = folds_by_image(questions, folds, seed)
    chosen = np.zeros(len(questions))
    for f in range(folds):
        test_idx = np.flatnonzero(fold == f)
        pick = MODELS[name]([q for q, g in zip(questions, fold) if g != f][:size])
        chosen[test_idx] = chosen_scores(pick, [questions[i] for i in test_idx])
    return chosen


def versus(base: list[dict], other: list[dict], name: str, folds: int, seeds: int = 1) -> int:
    """Greedy and chooser accuracy of two table sets on their common questions, paired (each
    question's chooser score averaged over ``seeds`` fold assignments)."""
    by_row = {q["row"]: q for q in other}
    rows = [q["row"] for q in base if q["row"] in by_row]
    a, b = [q for q in base if q["row"] in by_row], [by_row[r] for r in rows]
    print(f"{len(rows)} questions in both sets")
    results = {}
    for label, qs in (("base", a), ("versus", b)):
        results[label] = (greedy_scores(qs),
                          np.mean([cross_validated(qs, name, folds, seed) for seed in range(seeds)], axis=0))
        print(f"{label:7s} greedy {100 * results[label][0].mean():.2f}%, {name} {100 * results[label][1].mean():.2f}%")
    for i, what in enumerate(("greedy", name)):
        d = results["versus"][i] - results["base"][i]
        print(f"versus - base, {what}: {100 * d.mean():+.2f} ± {100 * d.std(ddof=1) / np.sqrt(len(d)):.2f}")
    return 0


def smoke_tables(folder: Path, questions: int = 32, per_question: int = 4) -> tuple[Path, Path, Path]:
    """Synthetic candidate tables in the format of `bench/chooser_tables.py` (two settings of the
    same questions) and the index they refer to, built with the tests' fake embedder: a candidate's
    target is 1 for its question's answer, which a higher ``lp_sum`` tends to mark."""
    sys.path.insert(0, str(TESTS))
    from fakes import fake_index

    from pica.types import Example

    words = [f"answer {i}" for i in range(10)]
    examples = [Example(id=str(i), question=f"question {i}?", answer=words[i % 10], caption=f"caption {i}",
                        image_id=str(i // 2)) for i in range(questions)]
    index = folder / "index"
    fake_index(index, examples)
    rng = np.random.default_rng(0)
    paths = []
    for name in ("base", "versus"):
        lines = []
        for row, ex in enumerate(examples):
            options = [ex.answer, *rng.choice([w for w in words if w != ex.answer], per_question - 1, replace=False)]
            rng.shuffle(options)
            cands = []
            for j, answer in enumerate(options):
                features = {f: float(rng.normal()) for f in FEATURES}
                features.update(is_greedy=float(j == 0), log_freq=0.0, lp_sum=features["lp_sum"] + (answer == ex.answer))
                cands.append({"answer": answer, "features": features, "target": float(answer == ex.answer)})
            lines.append(json.dumps({"row": row, "image": ex.image_id, "candidates": cands}))
        paths.append(folder / f"{name}.jsonl")
        paths[-1].write_text("\n".join(lines) + "\n")
    return paths[0], paths[1], index


def smoke() -> int:
    """Every mode on synthetic tables: all models with --recount, a learning curve, --versus (the
    last two with quick models: pica's trees take seconds per fit even on small tables)."""
    with smoke_folder("chooser_models") as folder:
        base, other, index = smoke_tables(folder)
        common = [str(base), "--folds", "2", "--seeds", "1"]
        main([*common, "--recount", str(index)])
        main([*common, "--models", "conditional-logit,trees-d2", "--sizes", "8,16"])
        return main([*common, "--versus", str(other), "--models", "trees-d2"])


def main(argv=None) -> int:
    if argv is None and "--smoke" in sys.argv[1:]:
        return smoke()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("tables", nargs="+", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, help="fold assignments averaged (default 2; 1 with --versus)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--recount", metavar="INDEX", help="recompute log_freq with this index")
    parser.add_argument("--sizes", help="learning curve: comma-separated fitting-set sizes")
    parser.add_argument("--versus", nargs="+", type=Path, metavar="TABLES",
                        help="tables of another prompt setting (e.g. answer-aware examples): compare greedy and"
                             " the first --models model on the questions both sets have, paired")
    args = parser.parse_args(argv)
    questions = load(args.tables)
    if args.recount:
        print(f"log_freq recomputed: {recount_frequencies(questions, args.recount)} values changed")
    if args.versus:
        return versus(questions, load(args.versus), args.models.split(",")[0], args.folds, args.seeds or 1)
    args.seeds = args.seeds or 2
    greedy = greedy_scores(questions)
    oracle = np.array([max(c["target"] for c in q["candidates"]) for q in questions])
    print(f"{len(questions)} questions, {len({q['image'] for q in questions})} images;"
          f" greedy {100 * greedy.mean():.2f}%, oracle {100 * oracle.mean():.2f}%")
    sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else [None]
    for name in args.models.split(","):
        for size in sizes:
            chosen = [cross_validated(questions, name, args.folds, seed, size) for seed in range(args.seeds)]
            accs, diffs = [c.mean() for c in chosen], [c - greedy for c in chosen]
            d = np.mean(diffs, axis=0)
            se = d.std(ddof=1) / np.sqrt(len(d))
            label = name + (f" n={size}" if size else "")
            print(f"{label:24s} {100 * np.mean(accs):6.2f}%  {100 * d.mean():+.2f} ± {100 * se:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
