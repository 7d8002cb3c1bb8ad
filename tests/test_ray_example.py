"""examples/ray_shards.py on a local Ray: one task per shard captions against a real vision
server, one per shard builds the index, the merge equals a one-shot build (skipped without ray:
pip install "pica[ray]")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from servers import VisionServer

from pica.retrieval.index import ExampleIndex

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_tasks_caption_and_build_shards_then_merge(okvqa_files, tmp_path):
    rows = json.loads(okvqa_files["pool"].read_text())[:12]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(rows))
    images = tmp_path / "images"
    images.mkdir()
    for i, row in enumerate(rows):
        cells = np.random.default_rng(i).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        Image.fromarray(cells).resize((32, 32), Image.NEAREST).save(images / f"{row['img_id']}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    with VisionServer(slots=4) as server:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "ray_shards.py"), "--dataset", str(data),
             "--images", str(images), "--captioner", "openai:vlm", "--api-base", server.base_url,
             "--out", str(tmp_path / "index"), "--shards", "2", "--num-cpus", "2",
             "--batch-size", "4"],
            capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert server.count == 12  # every image captioned once, across the two tasks
    parts = tmp_path / "index.parts"
    captions = parts / "captions.jsonl"
    mark, *rows = captions.read_text().splitlines()
    assert json.loads(mark)["pica_captions"] == 1 and len(rows) == 12  # one mark line, then 12 captions
    subprocess.run([sys.executable, "-m", "pica", "index", "build", str(tmp_path / "whole"),
                    "--dataset", str(data), "--captions", str(captions), "--batch-size", "4"], check=True,
                   env={**env, "OMP_NUM_THREADS": "1"},  # as Ray runs a 1-CPU task: same BLAS rounding
                   capture_output=True)
    merged, whole = ExampleIndex.load(tmp_path / "index"), ExampleIndex.load(tmp_path / "whole")
    assert merged.examples.equals(whole.examples)
    for kind in whole.kinds:
        assert np.array_equal(merged.vectors[kind].reconstruct_n(0, 12),
                              whole.vectors[kind].reconstruct_n(0, 12))
