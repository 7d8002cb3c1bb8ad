"""`pica index build/info/list` on fixture datasets; image indexes with tiny BLIP + open_clip."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from pica.cli import app
from pica.retrieval.index import ExampleIndex

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, fragment):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_build_info_list_and_refuse_second_build(okvqa_files, tmp_path, monkeypatch):
    monkeypatch.setenv("PICA_INDEX_DIR", str(tmp_path))
    out = tmp_path / "pool"
    result = run("index", "build", out, "--dataset", okvqa_files["pool"], "--captions", okvqa_files["captions"])
    assert result.exit_code == 0, result.output
    assert "examples  30" in result.stdout
    info = run("index", "info", "pool")  # a name under the index root
    assert info.exit_code == 0 and "examples  30" in info.stdout
    assert "sentence-transformers:all-MiniLM-L6-v2" in info.stdout and "question (384), caption (384)" in info.stdout
    listing = run("index", "list")
    assert listing.exit_code == 0 and "pool" in listing.stdout and "30 examples" in listing.stdout
    before = (out / "manifest.json").read_bytes()
    again = run("index", "build", out, "--dataset", okvqa_files["pool"], "--captions", okvqa_files["captions"])
    one_line_error(again, "--overwrite")
    assert (out / "manifest.json").read_bytes() == before
    index = ExampleIndex.load(out)
    assert index.example(0).answer == "tennis" and index.example(0).caption.startswith("a man swinging")


def test_nearest_neighbours_share_the_topic(text_index):
    from pica.retrieval.embedders import make_embedder

    index = ExampleIndex.load(text_index)
    emb = make_embedder(index.embedder_id)
    queries = {"question": emb.embed_texts(["What drink do we get from this animal?"]),
               "caption": emb.embed_texts(["a brown cow standing in a field"])}
    hits = index.nearest(queries, k=3)[0]
    assert [index.example(h.row).answer for h in hits] == ["milk", "milk", "milk"]


def test_missing_captions_are_reported_or_skipped(okvqa_files, tmp_path):
    lines = okvqa_files["captions"].read_text().splitlines()
    partial = tmp_path / "partial.tsv"
    partial.write_text("\n".join(lines[3:]) + "\n")  # the first three pool images lose their captions
    out = tmp_path / "idx"
    result = run("index", "build", out, "--dataset", okvqa_files["pool"], "--captions", partial)
    one_line_error(result, "captions missing for 3 of 30")
    assert "110000, 110001, 110002" in result.stderr and not out.exists()
    result = run("index", "build", out, "--dataset", okvqa_files["pool"], "--captions", partial, "--skip-missing")
    assert result.exit_code == 0, result.output
    assert ExampleIndex.load(out).manifest["count"] == 27


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("[{\"sent\": \"q\",", "not valid JSON"), ("[]", "empty")],
)
def test_bad_datasets_leave_no_folder(tmp_path, okvqa_files, content, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "idx"
    one_line_error(run("index", "build", out, "--dataset", bad, "--captions", okvqa_files["captions"]), fragment)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.json"]


def test_examples_file_builds_a_text_index(tmp_path):
    src = tmp_path / "ex.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"x{i}", "caption": "a red kite in the sky",
                                         "question": f"What flies here {i}?", "answer": "kite"})
                             for i in range(4)) + "\n")
    result = run("index", "build", tmp_path / "ex", "--examples", src)
    assert result.exit_code == 0, result.output
    assert ExampleIndex.load(tmp_path / "ex").example(3).id == "x3"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import make_tiny_blip, make_tiny_open_clip

    root = tmp_path_factory.mktemp("tiny")
    return {"blip": make_tiny_blip(root / "blip"), "clip": make_tiny_open_clip(root / "clip")}


def write_images(folder, dataset_path):
    """One distinct picture per example: seeded coarse noise, so every image has a clear nearest."""
    import numpy as np

    folder.mkdir()
    for i, row in enumerate(json.loads(dataset_path.read_text())):
        cells = np.random.default_rng(i).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
        Image.fromarray(cells).resize((48, 40), Image.NEAREST).save(folder / f"{row['img_id']}.png")
    return folder


def test_image_index_with_tiny_blip_and_open_clip_then_answer(okvqa_files, tiny, tmp_path):
    images = write_images(tmp_path / "images", okvqa_files["pool"])
    out = tmp_path / "img-index"
    result = run("index", "build", out, "--dataset", okvqa_files["pool"], "--images", images,
                 "--captioner", tiny["blip"], "--embedder", f"open_clip:{tiny['clip']}", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    index = ExampleIndex.load(out)
    assert index.kinds == ["question", "image"] and len(index) == 30
    assert index.embedder_id == f"open_clip:local-dir:{tiny['clip'].resolve()}"
    assert all(index.example(i).caption for i in range(30))  # generated by the captioner

    photo = images / "COCO_val2014_000000110000.png"
    answer = run("answer", photo, "What sport is being played?", "--index", out, "--captioner", tiny["blip"],
                 "--question-aware", "--shots", "4", "--json")
    assert answer.exit_code == 0, answer.output
    data = json.loads(answer.stdout)
    assert data["caption"] and not data["caption"].startswith("please describe")
    assert len(data["example_ids"][0]) == 4
    ids = data["example_ids"][0]
    # the photo is example 1100005's own image: never a shot (no answer leak); the two other
    # examples with the same question come last, the one with the more similar picture last
    assert "1100005" not in ids and ids[-2:] == ["1100205", "1100105"]


def test_missing_image_files_are_an_input_error(okvqa_files, tiny, tmp_path):
    images = write_images(tmp_path / "images", okvqa_files["pool"])
    next(images.iterdir()).unlink()
    result = run("index", "build", tmp_path / "x", "--dataset", okvqa_files["pool"], "--images", images,
                 "--captioner", tiny["blip"], "--embedder", f"open_clip:{tiny['clip']}")
    one_line_error(result, "1 images missing")
    assert not (tmp_path / "x").exists()


def official_pair(tmp_path, okvqa_files):
    """The fixture pool rewritten as the official OK-VQA v1.1 questions + annotations pair."""
    rows = json.loads(okvqa_files["pool"].read_text())
    questions = {"questions": [{"image_id": int(r["img_id"][-12:]), "question": r["sent"],
                                "question_id": r["question_id"]} for r in rows]}
    annotations = {"annotations": [{
        "question_id": r["question_id"], "image_id": int(r["img_id"][-12:]), "question_type": "four",
        "answer_type": "other",
        "answers": [{"answer": a, "raw_answer": a + "s" if a == "surfing" else a, "answer_confidence": "yes",
                     "answer_id": i + 1} for i, a in enumerate([next(iter(r["label"]))] * 10)]}
        for r in rows]}
    q, a = tmp_path / "questions.json", tmp_path / "annotations.json"
    q.write_text(json.dumps(questions))
    a.write_text(json.dumps(annotations))
    return q, a


def test_official_pair_and_aokvqa_build_the_same_examples(okvqa_files, tmp_path):
    q, a = official_pair(tmp_path, okvqa_files)
    result = run("index", "build", tmp_path / "official", "--questions", q, "--annotations", a, "--captions",
                 okvqa_files["captions"])
    assert result.exit_code == 0, result.output
    index = ExampleIndex.load(tmp_path / "official")
    answers = [index.example(i).answer for i in range(len(index))]
    assert answers[:2] == ["tennis", "surfings"]  # v1.1: the example shows the raw (unstemmed) answer
    rows = json.loads(okvqa_files["pool"].read_text())
    aok = [{"question_id": str(r["question_id"]), "image_id": int(r["img_id"][-12:]), "question": r["sent"],
            "choices": ["x", "y"], "direct_answers": [next(iter(r["label"]))] * 10} for r in rows]
    (tmp_path / "aok.json").write_text(json.dumps(aok))
    result = run("index", "build", tmp_path / "aok", "--aokvqa", tmp_path / "aok.json", "--captions",
                 okvqa_files["captions"])
    assert result.exit_code == 0, result.output
    assert ExampleIndex.load(tmp_path / "aok").example(0).answer == "tennis"


def test_hf_dataset_folder_with_images_and_a_text_embedder(okvqa_files, tmp_path):
    import datasets

    rows = json.loads(okvqa_files["pool"].read_text())[:6]
    data = datasets.Dataset.from_dict({
        "question_id": [r["question_id"] for r in rows], "question": [r["sent"] for r in rows],
        "image_id": [int(r["img_id"][-12:]) for r in rows],
        "answers": [[next(iter(r["label"]))] * 10 for r in rows],
        "image": [Image.new("RGB", (16, 16), (i * 40, 0, 0)) for i in range(6)],
    }).cast_column("image", datasets.Image())
    data.save_to_disk(str(tmp_path / "hf"))
    out = tmp_path / "hf-index"
    result = run("index", "build", out, "--hf-dataset", tmp_path / "hf", "--captions", okvqa_files["captions"],
                 "--embedder", "sentence-transformers:all-MiniLM-L6-v2")
    assert result.exit_code == 0, result.output
    index = ExampleIndex.load(out)
    assert index.kinds == ["question", "caption"] and len(index) == 6
    assert index.manifest["sources"]["hf_dataset"] == str(tmp_path / "hf")
