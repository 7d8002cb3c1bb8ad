"""ScienceQA: the reader, the paper's prompt formats, answer parsing, the fallback, the columns,
and a run whose summary agrees with an independent scorer of its results file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeBackend, FakeEmbedder
from scienceqa_fixture import write_scienceqa_fixture

from pica.config import CHOICES, Settings
from pica.datasets import load_questions, read_scienceqa
from pica.datasets.scienceqa import check_captions
from pica.errors import InputError
from pica.retrieval.index import ExampleIndex
from pica.retrieval.writer import IndexWriter
from pica.tasks import scienceqa
from pica.tasks.scienceqa_results import COLUMNS, problem_columns, results_file
from pica.types import Example


@pytest.fixture
def sqa(tmp_path) -> dict[str, Path]:
    return write_scienceqa_fixture(tmp_path / "sqa")


# -- prompts (models/base_prompt.py) ---------------------------------------------------------


def test_qcm_ale_shot_and_test_item_are_the_papers():
    shot = scienceqa.one_example("QCM-ALE", question="Which is a mammal?", context="Look.  A dog.",
                                 choices=["a dog", "a frog"], answer=0,
                                 lecture="Mammals have fur.\nBirds do not.", solution="A dog has fur.")
    assert shot == ("Question: Which is a mammal?\nContext: Look. A dog.\nOptions: (A) a dog (B) a frog\n"
                    "Answer: The answer is A. BECAUSE: Mammals have fur.\\nBirds do not. A dog has fur.")
    test = scienceqa.one_example("QCM-ALE", question="Q?", context="N/A", choices=["x", "y", "z"], answer=None)
    assert test == "Question: Q?\nContext: N/A\nOptions: (A) x (B) y (C) z\nAnswer:"


def test_empty_rationale_drops_because_and_answer_only_format():
    assert scienceqa.one_example("QCM-ALE", question="Q?", context="N/A", choices=["x", "y"], answer=1) == \
        "Question: Q?\nContext: N/A\nOptions: (A) x (B) y\nAnswer: The answer is B."
    assert scienceqa.one_example("QCM-A", question="Q?", context="c", choices=["x", "y"], answer=0,
                                 lecture="L", solution="S").endswith("Answer: The answer is A.")
    assert scienceqa.one_example("CQM-A", question="Q?", context="c", choices=["x"], answer=None) == \
        "Context: c\nQuestion: Q?\nOptions: (A) x\nAnswer:"


@pytest.mark.parametrize("hint, caption, expected", [
    ("", "", "N/A"), ("", None, "N/A"), ("Read.", "", "Read."), ("", "A map.", "A map."),
    ("Read.", "A map.", "Read. A map."),
])
def test_context_is_hint_and_caption(hint, caption, expected):
    assert scienceqa.context_text(hint, caption) == expected


def test_prompt_joins_shots_by_a_blank_line_most_similar_last_and_trims_to_fit():
    shots = [Example(id=str(i), question=f"Q{i}?", answer="a", caption="", choices=("a", "b"),
                     correct_choice_idx=0, meta={"hint": "", "lecture": "", "solution": ""}) for i in range(3)]
    prompt, shown = scienceqa.build_prompt("QCM-A", "T?", "N/A", ["a", "b"], shots)
    parts = prompt.split("\n\n")
    assert [p.splitlines()[0] for p in parts] == ["Question: Q2?", "Question: Q1?", "Question: Q0?", "Question: T?"]
    assert shown == shots
    prompt, shown = scienceqa.build_prompt("QCM-A", "T?", "N/A", ["a", "b"], shots,
                                           fits=lambda text: text.count("Question:") <= 2)
    assert [ex.id for ex in shown] == ["0"] and prompt.count("Question:") == 2


def test_formats_are_the_papers_and_the_settings_choices():
    assert tuple(scienceqa.formats()["formats"]) == CHOICES["prompt_format"]
    for fmt in CHOICES["prompt_format"]:  # every format builds
        assert scienceqa.one_example(fmt, question="Q", context="C", choices=["x"], answer=0, lecture="L",
                                     solution="S")
    with pytest.raises(InputError, match="QCM-ALE"):
        scienceqa.check_format("QCM-X")


# -- parsing (models/run_gpt3.py) ------------------------------------------------------------


@pytest.mark.parametrize("output, n, expected", [
    ("The answer is B.", 2, 1),
    ("The answer is C. BECAUSE: the lecture.", 3, 2),
    ("Lecture first. The answer is A.", 2, 0),
    ("The answer is D.", 3, None),                 # not an option of this problem
    ("The answer is A. The answer is B.", 2, None),  # two answers: neither
    ("The answer is A", 2, None),                  # the pattern wants a character after the letter
    ("B", 2, None),
    ("", 2, None),
])
def test_parse_answer(output, n, expected):
    assert scienceqa.parse_answer(output, n) == expected


def test_rationale_of_each_output_order():
    assert scienceqa.rationale_of("The answer is A. BECAUSE: fur. bears.", "QCM-ALE") == "fur. bears."
    assert scienceqa.rationale_of("Fur. The answer is A.", "QCM-LA") == "Fur."
    assert scienceqa.rationale_of("The answer is A.", "QCM-A") == ""


# -- columns (tools/evaluate_acc.py) ---------------------------------------------------------


@pytest.mark.parametrize("meta, expected", [
    ({"subject": "natural science", "hint": "", "image": False, "grade": "grade2"}, ["NAT", "NO", "G1-6"]),
    ({"subject": "social science", "hint": "h", "image": True, "grade": "grade7"}, ["SOC", "TXT", "IMG", "G7-12"]),
    ({"subject": "language science", "hint": "h", "image": False, "grade": "grade12"}, ["LAN", "TXT", "G7-12"]),
    ({"subject": "natural science", "hint": "", "image": True, "grade": "grade6"}, ["NAT", "IMG", "G1-6"]),
])
def test_problem_columns(meta, expected):
    assert problem_columns(meta) == expected


# -- reader ----------------------------------------------------------------------------------


def test_reader_split_captions_and_fields(sqa):
    qs = read_scienceqa(sqa["problems"], "val", captions=sqa["captions"])
    assert [q.id for q in qs] == [str(1001 + i) for i in range(6)]
    q = next(q for q in qs if q.meta["image"])
    assert q.scoring == "scienceqa" and q.caption and q.correct_choice_idx is not None
    assert q.answers == [q.choices[q.correct_choice_idx]]
    assert all(q.caption == "" for q in qs if not q.meta["image"])
    assert all(q.caption is None for q in read_scienceqa(sqa["problems"], "val") if q.meta["image"])
    assert [q.id for q in read_scienceqa(sqa["problems"], "validation")] == [q.id for q in qs]


def test_reader_errors_name_what_exists(sqa, tmp_path):
    with pytest.raises(InputError, match="available: train, val"):
        read_scienceqa(sqa["problems"], "test")
    elsewhere = tmp_path / "p" / "problems.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(sqa["problems"].read_text())
    with pytest.raises(InputError, match="--pid-splits"):
        read_scienceqa(elsewhere, "val")
    assert len(read_scienceqa(elsewhere, "val", pid_splits=sqa["pid_splits"])) == 6
    with pytest.raises(InputError, match="not a ScienceQA captions file"):
        read_scienceqa(sqa["problems"], "val", captions=sqa["pid_splits"])


def test_images_in_the_datasets_layout(tmp_path):
    files = write_scienceqa_fixture(tmp_path / "sqa", images=True)
    qs = load_questions(scienceqa=files["problems"], split="train", images_dir=files["images"], limit=4)
    assert len(qs) == 4
    for q in qs:
        assert (q.image_path == files["images"] / "train" / q.id / "image.png") if q.meta["image"] \
            else q.image_path is None
    (files["images"] / "train" / "2" / "image.png").unlink()
    with pytest.raises(InputError, match="1 problems have no image"):
        read_scienceqa(files["problems"], "train", images_dir=files["images"])


def test_uncaptioned_problems_fail_in_one_line_naming_how_many(sqa):
    qs = read_scienceqa(sqa["problems"], "val")
    with pytest.raises(InputError, match=r"^2 of 6 ScienceQA problems have an image but no caption"):
        check_captions(qs, captioner_given=False)
    with pytest.raises(InputError, match="no image file to caption"):
        check_captions(qs, captioner_given=True)
    check_captions(read_scienceqa(sqa["problems"], "val", captions=sqa["captions"]), False)


def test_hf_copy_with_scienceqa_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    features = datasets.Features({
        "image": datasets.Image(), "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("int64"),
        "hint": datasets.Value("string"), "task": datasets.Value("string"), "grade": datasets.Value("string"),
        "subject": datasets.Value("string"), "topic": datasets.Value("string"),
        "category": datasets.Value("string"), "skill": datasets.Value("string"),
        "lecture": datasets.Value("string"), "solution": datasets.Value("string")})
    rows = {"image": [Image.new("RGB", (8, 8)), None], "question": ["Which is north?", "Which is a noun?"],
            "choices": [["a", "b"], ["x", "y", "z"]], "answer": [1, 2], "hint": ["", "Read."],
            "task": ["t", "t"], "grade": ["grade3", "grade9"],
            "subject": ["social science", "language science"], "topic": ["g", "w"], "category": ["c", "c"],
            "skill": ["s", "s"], "lecture": ["L", "L"], "solution": ["S", "S"]}
    folder = tmp_path / "hf"
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(folder))
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"captions": {"validation-0": "a map"}}))
    qs = load_questions(hf_dataset=folder, split="validation", scienceqa_captions=captions)
    assert [q.id for q in qs] == ["validation-0", "validation-1"]
    assert qs[0].scoring == "scienceqa" and qs[0].caption == "a map" and qs[0].load_image() is not None
    assert qs[1].caption == "" and not qs[1].has_image and qs[1].context == "Read."
    assert problem_columns(qs[1].meta) == ["LAN", "TXT", "G7-12"]


# -- answering with fakes: parsing, the fallback, the row ------------------------------------


class ScoringBackend(FakeBackend):
    """Replies with ``reply``; scores option B highest, and every option equally under N/A."""

    def score(self, prompt, continuations):
        return [0.0 if "is B." in c else -5.0 for c in continuations]


def _pipeline(tmp_path, sqa, backend, **settings):
    from pica.pipeline import Pipeline

    train = read_scienceqa(sqa["problems"], "train", captions=sqa["captions"])
    emb = FakeEmbedder()
    examples = [Example(id=q.id, question=q.question, answer=q.answers[0], caption=q.caption,
                        image_id=q.id, choices=tuple(q.choices), correct_choice_idx=q.correct_choice_idx,
                        meta=q.meta) for q in train]
    with IndexWriter(tmp_path / "idx", emb.id, {"question": emb.dim, "caption": emb.dim}) as w:
        w.add(examples, {"question": emb.embed_texts([q.search_text for q in train]),
                         "caption": emb.embed_texts([q.caption for q in train])})
    index = ExampleIndex.load(tmp_path / "idx")
    return Pipeline(Settings(index=str(index.path), shots=2, **settings), backend=backend,
                    index=index, embedder=emb)


def test_parsed_answer_row_and_shots_from_the_index(tmp_path, sqa):
    from pica.evaluation.results import result_row

    backend = FakeBackend(reply=lambda p: " The answer is A. BECAUSE: a lecture. a solution.")
    pipe = _pipeline(tmp_path, sqa, backend, prompt_format="QCM-ALE")
    q = read_scienceqa(sqa["problems"], "val", captions=sqa["captions"])[0]
    answer = pipe.answer(q, task="scienceqa")
    assert answer.mc["parsed"] and answer.mc["fallback"] is None and answer.mc["index"] == 0
    assert answer.rationale == "a lecture. a solution."
    prompt = backend.prompts[0]
    assert prompt.count("\n\n") == 2 and prompt.endswith("Answer:") and "BECAUSE:" in prompt
    row = result_row(q, answer, "scienceqa")
    assert row["task"] == "scienceqa" and row["question_id"] == q.id
    assert row["score"] == float(q.correct_choice_idx == 0)
    assert row["columns"] == problem_columns(q.meta) and row["chosen_idx"] == 0


def test_unparseable_output_falls_back_to_scoring_and_says_so(tmp_path, sqa):
    pipe = _pipeline(tmp_path, sqa, ScoringBackend(reply=lambda p: " I do not know"), prompt_format="QCM-A")
    q = read_scienceqa(sqa["problems"], "val", captions=sqa["captions"])[0]
    answer = pipe.answer(q, task="scienceqa")
    assert not answer.mc["parsed"] and answer.mc["fallback"] == "score"
    assert answer.mc["index"] == 1 and answer.mc["rule"] == "sum" and len(answer.mc["scores"]) == len(q.choices)


def test_a_backend_that_cannot_score_maps_the_output_by_similarity(tmp_path, sqa):
    q = read_scienceqa(sqa["problems"], "val", captions=sqa["captions"])[0]
    pipe = _pipeline(tmp_path, sqa, FakeBackend(reply=lambda p: f" {q.choices[1]}"), prompt_format="QCM-A")
    answer = pipe.answer(q, task="scienceqa")
    assert answer.mc["fallback"].startswith("similarity") and answer.mc["index"] == 1


def test_score_method_calibrated_subtracts_the_content_free_prior(tmp_path, sqa):
    class Prior(FakeBackend):
        def score(self, prompt, continuations):  # B wins the raw score, only because of its prior
            blank = prompt.endswith("Answer:") and prompt.split("\n\n")[-1].startswith("Question: N/A")
            return [(-1.0 if "is B." in c else -2.0) + (0.0 if not blank else (-1.0 if "is B." in c else -3.0) + 1.0)
                    for c in continuations]

    q = read_scienceqa(sqa["problems"], "val", captions=sqa["captions"])[0]
    pipe = _pipeline(tmp_path, sqa, Prior(), prompt_format="QCM-A", mc_method="score", mc_score="calibrated")
    answer = pipe.answer(q, task="scienceqa")
    assert answer.raw == "" and answer.mc["method"] == "score" and answer.mc["prior"]
    assert answer.mc["index"] == 0  # B's raw lead is its prior
    assert answer.mc["scores"][1] > answer.mc["scores"][0]


def test_an_index_of_another_dataset_is_refused_in_one_line(sqa, fake_backend):
    from pica.tasks.base import Prepared

    q = read_scienceqa(sqa["problems"], "val", captions=sqa["captions"])[0]
    from pica.retrieval.index import Hit

    shot = Example(id="297147", question="What sport?", answer="tennis", caption="a court")
    tools = type("T", (), {"backend": fake_backend, "mc_method": "auto", "mc_score": "auto", "shots": 2,
                           "prompt_format": "QCM-A", "example": staticmethod(lambda row: shot)})()
    with pytest.raises(InputError, match="--scienceqa problems.json --split train"):
        scienceqa.respond(tools, Prepared(q, "", [Hit(0, 1.0)], {}))


def test_results_file_shape():
    rows = [{"task": "scienceqa", "question_id": "7", "score": 1.0, "chosen_idx": 2, "raw": "The answer is C."},
            {"task": "scienceqa", "question_id": "9", "score": 0.0, "chosen_idx": 0, "raw": ""}]
    assert results_file(rows) == {"acc": 50.0, "correct": 1, "count": 2, "results": {"7": 2, "9": 0},
                                  "outputs": {"7": "The answer is C.", "9": ""}}


# -- end to end: the CLI with the packaged Gemma ---------------------------------------------


def evaluate_acc(result_file: Path, problems_file: Path, split: str) -> dict[str, float]:
    """An independent scorer of a results file, as tools/evaluate_acc.py of ScienceQA scores one."""
    import pandas as pd

    results = json.loads(result_file.read_text())["results"]
    frame = pd.DataFrame(json.loads(problems_file.read_text())).T
    frame = frame[frame["split"] == split]
    frame = frame[frame.index.isin(list(results))]
    frame["true_false"] = [int(results[pid]) == row["answer"] for pid, row in frame.iterrows()]

    def acc(mask) -> float:
        part = frame[mask]
        return round(100 * part["true_false"].mean(), 2) if len(part) else None

    has_hint, has_image = frame["hint"].astype(bool), frame["image"].notna() & frame["image"].astype(bool)
    grade = frame["grade"]
    return {"NAT": acc(frame["subject"] == "natural science"), "SOC": acc(frame["subject"] == "social science"),
            "LAN": acc(frame["subject"] == "language science"), "TXT": acc(has_hint), "IMG": acc(has_image),
            "NO": acc(~has_hint & ~has_image), "G1-6": acc(grade.isin([f"grade{i}" for i in range(1, 7)])),
            "G7-12": acc(grade.isin([f"grade{i}" for i in range(7, 13)])),
            "Avg": round(100 * frame["true_false"].mean(), 2)}


@pytest.mark.slow
def test_cli_index_and_eval_agree_with_an_independent_scorer(tmp_path, gemma_path):
    from typer.testing import CliRunner

    from pica.cli import app

    sqa = write_scienceqa_fixture(tmp_path / "sqa", train=8, val=4)
    runner = CliRunner()
    index, out = tmp_path / "idx", tmp_path / "run"
    built = runner.invoke(app, ["index", "build", str(index), "--scienceqa", str(sqa["problems"]),
                                "--split", "train", "--captions", str(sqa["captions"])])
    assert built.exit_code == 0, built.output
    args = ["eval", "--scienceqa", str(sqa["problems"]), "--split", "val", "--captions", str(sqa["captions"]),
            "--index", str(index), "--prompt-format", "QCM-ALE", "--shots", "1", "--out", str(out),
            "--no-progress", "--llm", gemma_path]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    result_file = out / "scienceqa_val.json"
    data = json.loads(result_file.read_text())
    pids = json.loads(sqa["pid_splits"].read_text())["val"]
    assert sorted(data["results"]) == sorted(pids) and data["count"] == len(pids)
    summary = json.loads((out / "summary.json").read_text())
    table = summary["scienceqa"]
    assert list(table) == [*COLUMNS, "Avg"]
    independent = evaluate_acc(result_file, sqa["problems"], "val")
    for column, value in independent.items():
        assert table[column]["accuracy"] == value, column
    assert table["Avg"]["n"] == len(pids) and data["acc"] == pytest.approx(table["Avg"]["accuracy"], abs=0.01)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    parsed = [r for r in rows if r["mc"]["parsed"]]
    assert all(r["raw"].startswith("The answer is") for r in parsed)
    assert all(r["mc"]["fallback"] in ("score", None) for r in rows)
    assert "ScienceQA columns" in (out / "report.html").read_text()
    # Resumed: nothing is asked again; another format is another configuration.
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and len((out / "results.jsonl").read_text().splitlines()) == len(pids)
    other = runner.invoke(app, [a if a != "QCM-ALE" else "QCM-A" for a in args])
    assert other.exit_code == 2 and "prompt_format" in other.output


@pytest.mark.slow
def test_index_with_images_zero_vectors_for_problems_without_one(tmp_path):
    pytest.importorskip("open_clip")
    import numpy as np
    from tiny_models import make_tiny_blip, make_tiny_open_clip
    from typer.testing import CliRunner

    from pica.cli import app

    files = write_scienceqa_fixture(tmp_path / "sqa", train=6, val=2, images=True)
    clip, blip = make_tiny_open_clip(tmp_path / "clip"), make_tiny_blip(tmp_path / "blip")
    index = tmp_path / "idx"
    # No captions file: the problems with an image are captioned, the others keep their empty caption.
    done = CliRunner().invoke(app, ["index", "build", str(index), "--scienceqa", str(files["problems"]),
                                    "--split", "train", "--images", str(files["images"]),
                                    "--captioner", str(blip), "--embedder", f"open_clip:{clip}"])
    assert done.exit_code == 0, done.output
    idx = ExampleIndex.load(index)
    assert tuple(idx.kinds) == ("question", "image")
    problems = json.loads(files["problems"].read_text())
    for row in range(len(idx)):
        ex = idx.example(row)
        vector = idx.row_vectors("image", [row])[0]
        assert ex.meta["lecture"] == problems[ex.id]["lecture"] and ex.choices
        if problems[ex.id]["image"]:
            assert ex.caption and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)
        else:
            assert ex.caption == "" and not np.any(vector)
    no_captioner = CliRunner().invoke(app, ["index", "build", str(tmp_path / "idx2"), "--scienceqa",
                                            str(files["problems"]), "--split", "train"])
    assert no_captioner.exit_code == 2
    assert "2 of 6 ScienceQA problems have an image but no caption" in no_captioner.output


@pytest.mark.slow
def test_limited_scienceqa_runs_compare_by_column_with_n_of_total(tmp_path, gemma_path):
    """Seam of ScienceQA (#30), `--limit` and RUN (#33) and `pica compare` (#31): two real runs on
    the same 3 of 4 problems compare per ScienceQA column, against the rows themselves."""
    from typer.testing import CliRunner

    from pica.cli import app

    sqa = write_scienceqa_fixture(tmp_path / "sqa", train=8, val=4)
    runner = CliRunner()
    index = tmp_path / "idx"
    built = runner.invoke(app, ["index", "build", str(index), "--scienceqa", str(sqa["problems"]),
                                "--split", "train", "--captions", str(sqa["captions"])])
    assert built.exit_code == 0, built.output
    runs = []
    for shots in ("0", "2"):
        run = tmp_path / f"shots-{shots}"
        done = runner.invoke(app, ["eval", str(run), "--scienceqa", str(sqa["problems"]), "--split", "val",
                                   "--captions", str(sqa["captions"]), "--index", str(index),
                                   "--prompt-format", "QCM-A", "--shots", shots, "--limit", "3",
                                   "--no-progress", "--llm", gemma_path])
        assert done.exit_code == 0, done.output
        summary = json.loads((run / "summary.json").read_text())
        assert (summary["questions_total"], summary["limit"], summary["scienceqa"]["Avg"]["n"]) == (4, 3, 3)
        runs.append(run)
    compared = runner.invoke(app, ["compare", *map(str, runs), "--json"])
    assert compared.exit_code == 0, compared.output
    data = json.loads(compared.stdout)
    assert data["questions"] == 3 and data["differences"]["shots"] == [0, 2]
    rows = [{r["question_id"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}
            for run in runs]
    columns = {g["key"]: g for g in data["pairs"][0]["categories"] if g["kind"] == "column"}
    assert columns, data["pairs"][0]["categories"]
    for key, group in columns.items():
        ids = [q for q, r in rows[0].items() if key in r["columns"]]
        diffs = [100 * (rows[1][q]["score"] - rows[0][q]["score"]) for q in ids]
        assert group["n"] == len(ids) and group["difference"] == pytest.approx(sum(diffs) / len(ids)), key
