"""`pica index build --shard K/N` + `pica index merge` = the one-shot build: same rows in the same
order, same vectors, same nearest examples."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pica.cli import app
from pica.retrieval.index import ExampleIndex
from pica.util.shards import parse_shard, take_shard

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_shards_are_contiguous_blocks_covering_everything_once():
    items = list(range(10))
    parts = [take_shard(items, (k, 4)) for k in range(4)]
    assert sum(parts, []) == items and [len(p) for p in parts] == [2, 3, 2, 3]
    batches = [take_shard(items, (k, 2), unit=3) for k in range(2)]
    assert batches == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert take_shard(items, None) == items
    assert parse_shard(" 2/5 ") == (2, 5)
    for bad in ("5/5", "1", "-1/3", "a/b", "0/0"):
        with pytest.raises(Exception, match="--shard must be K/N"):
            parse_shard(bad)


def test_merged_shards_equal_the_one_shot_build(okvqa_files, tmp_path):
    data = ["--dataset", okvqa_files["pool"], "--captions", okvqa_files["captions"]]
    assert run("index", "build", tmp_path / "whole", *data, "--batch-size", "4").exit_code == 0
    for k in range(3):
        result = run("index", "build", tmp_path / f"s{k}", *data, "--shard", f"{k}/3", "--batch-size", "4")
        assert result.exit_code == 0, result.output
    # shards in any order on the command line
    result = run("index", "merge", tmp_path / "merged", tmp_path / "s2", tmp_path / "s0", tmp_path / "s1")
    assert result.exit_code == 0, result.output
    whole, merged = ExampleIndex.load(tmp_path / "whole"), ExampleIndex.load(tmp_path / "merged")
    assert merged.examples.equals(whole.examples)
    assert merged.kinds == whole.kinds and merged.embedder_id == whole.embedder_id
    for kind in whole.kinds:
        n = len(whole)
        assert np.array_equal(merged.vectors[kind].reconstruct_n(0, n), whole.vectors[kind].reconstruct_n(0, n))
    queries = {kind: whole.vectors[kind].reconstruct_n(0, 5) for kind in whole.kinds}
    a, b = whole.nearest(queries, k=6), merged.nearest(queries, k=6)
    assert [[(h.row, round(h.score, 6)) for h in hits] for hits in a] == \
        [[(h.row, round(h.score, 6)) for h in hits] for hits in b]
    assert merged.manifest["sources"]["merged_shards"] == 3


def test_merge_refuses_incomplete_or_mixed_shards(okvqa_files, tmp_path):
    data = ["--dataset", okvqa_files["pool"], "--captions", okvqa_files["captions"]]
    for k, batch in ((0, 4), (1, 4), (1, 8)):
        result = run("index", "build", tmp_path / f"s{k}-{batch}", *data, "--shard", f"{k}/2",
                     "--batch-size", batch)
        assert result.exit_code == 0, result.output
    assert run("index", "build", tmp_path / "whole", *data).exit_code == 0
    s0, s1 = tmp_path / "s0-4", tmp_path / "s1-4"
    for shards, fragment in (([s0], "shards missing: 1/2"), ([s0, s0, s1], "given twice"),
                             ([s0, tmp_path / "whole"], "is not a shard"),
                             ([s0, tmp_path / "s1-8"], "batch_size (8 vs 4) differ")):
        result = run("index", "merge", tmp_path / "m", *shards)
        assert result.exit_code == 2 and fragment in result.stderr, result.output
        assert not (tmp_path / "m").exists()
    result = run("index", "build", tmp_path / "s9", *data, "--shard", "0/2")  # 30 examples, 1 batch
    assert result.exit_code == 2 and "shard 0/2 is empty" in result.stderr
