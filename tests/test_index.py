"""ExampleIndex: build -> save -> load -> nearest, and every way a folder can be wrong."""

import json

import numpy as np
import pytest

from pica.errors import IndexFormatError, InputError
from pica.retrieval.index import ExampleIndex
from pica.retrieval.writer import IndexWriter
from pica.types import Example


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_examples(n):
    return [Example(id=f"e{i}", question=f"question {i}", answer=f"answer {i}", caption=f"caption {i}",
                    image_id=str(1000 + i // 2), answers={f"answer {i}": 1.0}) for i in range(n)]


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    return {"question": unit(rng.normal(size=(50, 8))), "image": unit(rng.normal(size=(50, 6)))}


@pytest.fixture
def built(tmp_path, vectors):
    out = tmp_path / "idx"
    dims = {"question": 8, "image": 6}
    with IndexWriter(out, "test:embedder", dims, sources={"dataset": "synthetic"}) as w:
        examples = make_examples(50)
        for start in range(0, 50, 16):  # several batches, as a streaming build does
            w.add(examples[start:start + 16], {k: v[start:start + 16] for k, v in vectors.items()})
    return out


def test_round_trip_keeps_examples_and_manifest(built):
    index = ExampleIndex.load(built)
    assert len(index) == 50
    assert index.kinds == ["question", "image"]
    assert index.embedder_id == "test:embedder"
    assert index.example(7) == make_examples(50)[7]
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["count"] == 50 and manifest["sources"] == {"dataset": "synthetic"}
    assert set(manifest["files"]) == {"examples.parquet", "question.faiss", "image.faiss"}


def test_nearest_is_the_exact_weighted_sum_of_cosines(built, vectors):
    index = ExampleIndex.load(built)
    rng = np.random.default_rng(1)
    queries = {"question": unit(rng.normal(size=(3, 8))), "image": unit(rng.normal(size=(3, 6)))}
    weights = {"question": 1.0, "image": 0.5}
    hits = index.nearest(queries, k=5, weights=weights)
    expected = queries["question"] @ vectors["question"].T + 0.5 * (queries["image"] @ vectors["image"].T)
    for i in range(3):
        assert [h.row for h in hits[i]] == list(np.argsort(-expected[i])[:5])
        assert hits[i][0].score == pytest.approx(expected[i].max(), abs=1e-5)


def test_single_kind_search_and_own_vector_is_top(built, vectors):
    index = ExampleIndex.load(built)
    hits = index.nearest({"question": vectors["question"][[4, 9]]}, k=3)
    assert [h[0].row for h in hits] == [4, 9]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-5)


def test_exclude_removes_rows_and_still_returns_k(built, vectors):
    index = ExampleIndex.load(built)
    hits = index.nearest({"question": vectors["question"][[4]]}, k=3, exclude=[[4, 5]])
    rows = [h.row for h in hits[0]]
    assert len(rows) == 3 and 4 not in rows and 5 not in rows


def test_searching_by_a_kind_the_index_lacks_fails(built):
    index = ExampleIndex.load(built)
    with pytest.raises(IndexFormatError, match="caption"):
        index.nearest({"caption": np.ones((1, 8), dtype=np.float32)}, k=1)


def test_embedder_mismatch_names_both(built):
    index = ExampleIndex.load(built)
    with pytest.raises(IndexFormatError, match="test:embedder.*open_clip:ViT-B-32"):
        index.check_embedder("open_clip:ViT-B-32@laion2b_s34b_b79k")


def test_existing_folder_is_refused_without_overwrite(built, vectors):
    with pytest.raises(InputError, match="--overwrite"):
        IndexWriter(built, "x:y", {"question": 8})
    with IndexWriter(built, "x:y", {"question": 8}, overwrite=True) as w:
        w.add(make_examples(2), {"question": vectors["question"][:2]})
    assert len(ExampleIndex.load(built)) == 2
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]


def test_failed_build_leaves_nothing_behind(tmp_path, vectors):
    out = tmp_path / "idx"
    with pytest.raises(RuntimeError), IndexWriter(out, "x:y", {"question": 8}) as w:
        w.add(make_examples(2), {"question": vectors["question"][:2]})
        raise RuntimeError("killed mid-build")
    assert list(tmp_path.iterdir()) == []


def test_empty_build_and_bad_vectors_are_input_errors(tmp_path, vectors):
    with pytest.raises(InputError, match="empty"), IndexWriter(tmp_path / "a", "x:y", {"question": 8}):
        pass
    w = IndexWriter(tmp_path / "b", "x:y", {"question": 8})
    with pytest.raises(InputError, match="shape"):
        w.add(make_examples(2), {"question": vectors["question"][:3]})
    with pytest.raises(InputError, match="duplicate"):
        w.add(make_examples(2) + make_examples(1), {"question": vectors["question"][:3]})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda p: (p / "manifest.json").write_text("{not json"), "corrupt manifest"),
        (lambda p: (p / "image.faiss").unlink(), "image.faiss is missing"),
        (lambda p: (p / "question.faiss").write_bytes(b"garbage"), "does not match its sha256"),
        (lambda p: (p / "manifest.json").write_text(json.dumps(
            {**json.loads((p / "manifest.json").read_text()), "format_version": 99})), "format version 99"),
        (lambda p: (p / "manifest.json").write_text('{"format": "other"}'), "not a pica index"),
    ],
)
def test_damaged_folders_fail_with_a_clear_message(built, damage, message):
    damage(built)
    with pytest.raises(IndexFormatError, match=message):
        ExampleIndex.load(built)


def test_missing_folder(tmp_path):
    with pytest.raises(IndexFormatError, match="not found"):
        ExampleIndex.load(tmp_path / "nope")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_search_finds_most_exact_neighbours(tmp_path, kind):
    rng = np.random.default_rng(2)
    n = 2000
    q = unit(rng.normal(size=(n, 16)))
    out = tmp_path / kind
    with IndexWriter(out, "x:y", {"question": 16}, approximate=kind) as w:
        w.add(make_examples(n), {"question": q})
    index = ExampleIndex.load(out)
    assert index.manifest["search"]["type"] == kind
    queries = unit(rng.normal(size=(50, 16)))
    approx = index.nearest({"question": queries}, k=16)
    exact = np.argsort(-(queries @ q.T), axis=1)[:, :16]
    recall = np.mean([len({h.row for h in a} & set(e)) / 16 for a, e in zip(approx, exact)])
    assert recall > 0.8


def test_random_is_reproducible_and_distinct(built):
    index = ExampleIndex.load(built)
    a, b = index.random(10, seed=3), index.random(10, seed=3)
    assert a == b and len({h.row for h in a}) == 10
    assert index.random(10, seed=4) != a
