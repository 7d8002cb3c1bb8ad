"""Tests of pica.datasets: every reader, every error, images folders, HF datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pica.datasets import (
    QuestionList,
    attach_images,
    example_answer,
    load_questions,
    normalize_image_id,
    read_aokvqa,
    read_captions,
    read_hf_dataset,
    read_lxmert,
    read_okvqa,
    scan_images,
)
from pica.errors import InputError
from pica.types import Question

LXMERT = [
    {"sent": "What sport is this?", "question_id": 2971475, "img_id": "COCO_val2014_000000297147",
     "label": {"tennis": 1, "racquetball": 0.667}, "class": 4, "question_type": "what sport"},
    {"sent": "What plant is this?", "question_id": 3397615, "img_id": "COCO_val2014_000000339761",
     "label": {"vine": 1}},
]
AOKVQA = [
    {"question_id": "22MexNkBPpdZGX6sxbxVBH", "image_id": 299207,
     "question": "What is the man by the bags awaiting?",
     "choices": ["skateboarder", "train", "delivery", "cab"], "correct_choice_idx": 3,
     "direct_answers": ["ride", "ride", "bus", "taxi", "travelling", "traffic", "taxi", "cab", "cab",
                        "his ride"],
     "rationales": ["A train would not be on the street."]},
]
VQA_QUESTIONS = {"questions": [
    {"image_id": 297147, "question": "What sport can you use this for?", "question_id": 2971475},
    {"image_id": 339761, "question": "Name the type of plant this is?", "question_id": 3397615},
]}


def _answers(stemmed: list[str], raw: list[str] | None = None) -> list[dict]:
    rows = []
    for i, answer in enumerate(stemmed):
        row = {"answer_id": i + 1, "answer_confidence": "yes", "answer": answer}
        if raw is not None:
            row["raw_answer"] = raw[i]
        rows.append(row)
    return rows


VQA_ANNOTATIONS = {"annotations": [
    {"question_id": 2971475, "image_id": 297147, "question_type": "four", "answer_type": "other",
     "answers": _answers(["race"] * 6 + ["motocross"] * 4, ["racing"] * 6 + ["motocross"] * 4)},
    {"question_id": 3397615, "image_id": 339761, "question_type": "eight", "answer_type": "other",
     "answers": _answers(["vine"] * 10, ["vine"] * 10)},
]}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_images(folder: Path, names: list[str]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (2, 2), (200, 10, 10)).save(target)
    return folder


# --------------------------------------------------------------------------------- ids, answers


@pytest.mark.parametrize(("value", "expected"), [
    ("COCO_val2014_000000297147", "297147"),
    (297147, "297147"),
    ("000000297147", "297147"),
    ("000000297147.jpg", "297147"),
    ("COCO_train2014_000000000009.JPG", "9"),
    ("COCO_test-dev2015_000000000001", "1"),
    ("val2014/COCO_val2014_000000297147.png", "297147"),
    (" 297147 ", "297147"),
    (297147.0, "297147"),
    ("0", "0"),
    ("abc", "abc"),
    ("  abc  ", "abc"),
    ("abc.jpg", "abc"),  # an image file name: its stem, as pica caption --images keys it
    ("photos/img00.PNG", "img00"),
    ("abc.txt", "abc.txt"),
    ("22MexNkBPpdZGX6sxbxVBH", "22MexNkBPpdZGX6sxbxVBH"),
    ("", ""),
])
def test_normalize_image_id(value, expected):
    assert normalize_image_id(value) == expected


def test_normalize_image_id_none_is_input_error():
    with pytest.raises(InputError, match="image id is missing"):
        normalize_image_id(None)


@pytest.mark.parametrize(("question", "expected"), [
    (Question("1", "q", raw_answers=["Racing", "racing", "race"], answers=["race", "race", "race"]),
     ("racing", {"racing": 2.0, "race": 1.0})),
    (Question("2", "q", answers=["The Dog", "dog", "cat"]), ("dog", {"dog": 2.0, "cat": 1.0})),
    (Question("3", "q", answers=["cat", "dog", "dog", "cat"]), ("cat", {"cat": 2.0, "dog": 2.0})),
    (Question("4", "q", answers=["Two", "2", "three"]), ("2", {"2": 2.0, "3": 1.0})),
    (Question("5", "q", label={"ficus": 0.667, "vine": 1.0, "ivy": 1.0}),
     ("vine", {"ficus": 0.667, "vine": 1.0, "ivy": 1.0})),
    (Question("6", "q", answers=["tennis"], label={"golf": 1.0}), ("tennis", {"tennis": 1.0})),
    (Question("7", "q", answers=["", "  "], label={"golf": 1.0}), ("golf", {"golf": 1.0})),
    (Question("8", "q"), ("", {})),
    # LXMERT files hold empty label keys (from stemming "vitamin c"?): never the shown answer
    (Question("9", "q", label={"": 1.0, "c": 1.0, "b": 0.667}), ("c", {"c": 1.0, "b": 0.667})),
    (Question("10", "q", label={" ": 1.0}), ("", {})),
])
def test_example_answer(question, expected):
    assert example_answer(question) == expected


# ------------------------------------------------------------------------------------- captions


def test_tsv_captions_pick_most_confident(tmp_path):
    rows = [
        'COCO_val2014_000000297147\t[{"caption": "a low one", "conf": 0.2},'
        ' {"caption": "a dog", "conf": 0.9}]',
        "",
        '000000339761\t[{"caption": "a plant.", "conf": 0.5}]',
        "42\ta plain caption",
    ]
    captions = read_captions(write_text(tmp_path / "caps.tsv", "\n".join(rows) + "\n"))
    assert captions == {"297147": "a dog", "339761": "a plant.", "42": "a plain caption"}


def test_tsv_header_is_skipped(tmp_path):
    path = write_text(tmp_path / "caps.tsv", "image_id\tcaption\n7\ta cat\n")
    assert read_captions(path) == {"7": "a cat"}


@pytest.mark.parametrize(("text", "match"), [
    ('1\t[{"caption": "ok", "conf": 1}]\n2 no tab here\n', r"caps\.tsv line 2: .*no tab"),
    ('1\t[{"caption": "ok", "conf": 1}]\n2\t[{"caption": "x", \n', r"caps\.tsv line 2: .*not valid JSON"),
    ("1\t[]\n", r"caps\.tsv line 1: missing image id or caption"),
    ("\n  \n", r"captions file is empty"),
])
def test_tsv_errors(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        read_captions(write_text(tmp_path / "caps.tsv", text))


def test_tsv_of_val2014_size_reads_every_line(tmp_path):
    """A file the size of PICa's val2014 captions (40,504 lines) is read whole; speed is not
    asserted here (a loaded machine is no stopwatch)."""
    line = '\t[{"caption": "a man riding a motorcycle down a dirt road.", "conf": 0.7398554682731628}]\n'
    path = write_text(tmp_path / "big.tsv", "".join(f"{100000 + i}{line}" for i in range(40504)))
    captions = read_captions(path)
    assert len(captions) == 40504
    assert captions["100000"] == captions["140503"] == "a man riding a motorcycle down a dirt road."


def test_jsonl_captions(tmp_path):
    rows = [{"image_id": "COCO_val2014_000000000001", "caption": "one"}, {"img_id": 2, "caption": "two"},
            {"id": "000000000003.jpg", "captions": ["three", "other"]}]
    path = write_text(tmp_path / "caps.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_captions(path) == {"1": "one", "2": "two", "3": "three"}


@pytest.mark.parametrize(("lines", "match"), [
    (['{"image_id": 1, "caption": "a"}', '{"image_id": 2, "caption": '],
     r"caps\.jsonl line 2: not valid JSON"),
    (['{"image_id": 1, "text": "a"}'], r"caps\.jsonl line 1: needs an id .*found keys: image_id, text"),
    (['["not", "an object"]'], r"caps\.jsonl line 1: expected an object"),
])
def test_jsonl_errors(tmp_path, lines, match):
    with pytest.raises(InputError, match=match):
        read_captions(write_text(tmp_path / "caps.jsonl", "\n".join(lines)))


@pytest.mark.parametrize("id_column", ["image_id", "id", "img_id"])
def test_csv_captions(tmp_path, id_column):
    text = f'{id_column},caption\n000000000005,"a cat, sleeping"\n6,a dog\n'
    path = write_text(tmp_path / "caps.csv", text)
    assert read_captions(path) == {"5": "a cat, sleeping", "6": "a dog"}


def test_csv_missing_columns(tmp_path):
    path = write_text(tmp_path / "caps.csv", "image,text\n1,a cat\n")
    with pytest.raises(InputError, match=r"needs columns image_id .* found: image, text"):
        read_captions(path)


def test_csv_empty_caption_names_line(tmp_path):
    path = write_text(tmp_path / "caps.csv", "image_id,caption\n1,a cat\n2,\n")
    with pytest.raises(InputError, match=r"caps\.csv line 3: missing image id or caption"):
        read_captions(path)


@pytest.mark.parametrize(("data", "expected"), [
    ({"COCO_val2014_000000000001": "one", "2": "two"}, {"1": "one", "2": "two"}),
    ({"1": [{"caption": "low", "conf": 0.1}, {"caption": "high", "conf": 0.8}]}, {"1": "high"}),
    ([{"image_id": 1, "caption": "one"}, {"img_id": "2", "captions": ["two"]}], {"1": "one", "2": "two"}),
    ({"annotations": [{"image_id": 1, "caption": "first"}, {"image_id": 1, "caption": "second"}]},
     {"1": "first"}),
])
def test_json_captions(tmp_path, data, expected):
    assert read_captions(write_json(tmp_path / "caps.json", data)) == expected


def test_json_caption_errors(tmp_path):
    with pytest.raises(InputError, match=r"caps\.json is not valid JSON: .* line 1 column"):
        read_captions(write_text(tmp_path / "caps.json", '{"1": "a",'))
    with pytest.raises(InputError, match=r"caption of image '1' is not text"):
        read_captions(write_json(tmp_path / "caps.json", {"1": 5}))
    with pytest.raises(InputError, match="no captions found"):
        read_captions(write_json(tmp_path / "caps.json", {}))


@pytest.mark.parametrize(("name", "text"), [
    ("caps.txt", '1\t[{"caption": "one", "conf": 0.5}]\n'),
    ("caps.txt", '{"image_id": 1, "caption": "one"}\n'),
    ("caps.json", '{"image_id": 1, "caption": "one"}\n{"image_id": 2, "caption": "two"}\n'),
    ("caps", "image_id,caption\n1,one\n"),
    ("caps.dat", '{"1": "one"}'),
])
def test_caption_format_sniffing(tmp_path, name, text):
    assert read_captions(write_text(tmp_path / name, text))["1"] == "one"


def test_caption_file_errors(tmp_path):
    with pytest.raises(InputError, match="captions file not found"):
        read_captions(tmp_path / "nope.tsv")
    with pytest.raises(InputError, match="cannot tell the format"):
        read_captions(write_text(tmp_path / "caps.txt", "just words\n"))
    with pytest.raises(InputError, match="is a folder"):
        read_captions(tmp_path)


# --------------------------------------------------------------------------------- JSON readers


def test_read_lxmert(tmp_path):
    qs = read_lxmert(write_json(tmp_path / "dev.json", LXMERT))
    assert isinstance(qs, QuestionList) and len(qs) == 2
    first = qs[0]
    assert (first.id, first.question, first.image_id) == ("2971475", "What sport is this?", "297147")
    assert first.label == {"tennis": 1.0, "racquetball": 0.667}
    assert first.answers == [] and first.raw_answers == []
    assert (first.category, first.question_type) == ("4", "what sport")
    assert qs[1].category is None and qs[1].image_path is None


@pytest.mark.parametrize(
    ("code", "name"),
    [("8", "Plants and Animals"), ("eight", "Plants and Animals"), (" Four ", "Sports and Recreation"),
     ("10", "Weather and Climate"), ("ten", "Weather and Climate"), ("0", "Other"), ("other", "Other"),
     ("11", None), ("what sport", None), ("", None)],
)
def test_okvqa_category_names(code, name):
    from pica.evaluation.categories import category_name

    assert category_name(code) == name


def test_read_lxmert_row_without_sent(tmp_path):
    path = write_json(tmp_path / "dev.json", [LXMERT[0], {"question": "x", "question_id": 1}])
    with pytest.raises(InputError, match=r"dev\.json\[1\]: missing 'sent'"):
        read_lxmert(path)


def test_read_okvqa_pair(tmp_path):
    q, a = write_json(tmp_path / "q.json", VQA_QUESTIONS), write_json(tmp_path / "a.json", VQA_ANNOTATIONS)
    first = read_okvqa(q, a)[0]
    assert (first.id, first.image_id) == ("2971475", "297147")
    assert (first.category, first.question_type) == ("four", "four")
    assert first.answers == ["race"] * 6 + ["motocross"] * 4
    assert first.raw_answers == ["racing"] * 6 + ["motocross"] * 4
    assert first.label == {}
    assert example_answer(first) == ("racing", {"racing": 6.0, "motocross": 4.0})


def test_read_okvqa_v10_has_no_raw_answers(tmp_path):
    rows = [dict(a, answers=_answers(["vine"] * 10)) for a in VQA_ANNOTATIONS["annotations"]]
    a = write_json(tmp_path / "a.json", {"annotations": rows})
    qs = read_okvqa(write_json(tmp_path / "q.json", VQA_QUESTIONS), a)
    assert qs[1].answers == ["vine"] * 10 and qs[1].raw_answers == []


def test_read_okvqa_questions_only(tmp_path):
    qs = read_okvqa(write_json(tmp_path / "q.json", VQA_QUESTIONS), None)
    assert [q.id for q in qs] == ["2971475", "3397615"]
    assert all(q.answers == [] and q.label == {} and q.category is None for q in qs)


def test_read_okvqa_unannotated_questions(tmp_path):
    extra = {"questions": VQA_QUESTIONS["questions"] + [
        {"image_id": i, "question": "q?", "question_id": i * 10} for i in range(1, 6)]}
    match = r"5 questions in .*q\.json have no annotation .* \(first: 10, 20, 30\)"
    with pytest.raises(InputError, match=match):
        read_okvqa(write_json(tmp_path / "q.json", extra), write_json(tmp_path / "a.json", VQA_ANNOTATIONS))


def test_read_okvqa_swapped_files(tmp_path):
    q, a = write_json(tmp_path / "q.json", VQA_QUESTIONS), write_json(tmp_path / "a.json", VQA_ANNOTATIONS)
    with pytest.raises(InputError, match="is an annotations file"):
        read_okvqa(a, q)
    with pytest.raises(InputError, match="looks like a questions file"):
        read_okvqa(q, q)


def test_read_aokvqa(tmp_path):
    qs = read_aokvqa(write_json(tmp_path / "aok.json", AOKVQA))
    q = qs[0]
    assert (q.id, q.image_id, q.category) == ("22MexNkBPpdZGX6sxbxVBH", "299207", None)
    assert q.answers == AOKVQA[0]["direct_answers"]
    assert example_answer(q)[0] == "ride"


# ------------------------------------------------------------------------------- load_questions


def test_load_questions_detects_formats(tmp_path):
    lx = load_questions(dataset=write_json(tmp_path / "lx.json", LXMERT))
    assert lx[0].label and lx.source.endswith("lx.json")
    aok = load_questions(dataset=write_json(tmp_path / "aok.json", AOKVQA))
    assert aok[0].answers == AOKVQA[0]["direct_answers"]
    q, a = write_json(tmp_path / "q.json", VQA_QUESTIONS), write_json(tmp_path / "a.json", VQA_ANNOTATIONS)
    assert load_questions(dataset=q, annotations=a)[0].category == "four"
    assert load_questions(questions=q, annotations=a)[1].answers == ["vine"] * 10
    assert load_questions(questions=q)[1].answers == []
    assert load_questions(aokvqa=tmp_path / "aok.json")[0].id == "22MexNkBPpdZGX6sxbxVBH"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, r"give exactly one question source: --dataset"),
    ({"dataset": "a.json", "aokvqa": "b.json"}, r"got --dataset and --aokvqa"),
    ({"annotations": "a.json", "aokvqa": "b.json"}, r"--annotations goes with --questions"),
    ({"dataset": "missing.json"}, r"dataset file not found: missing\.json"),
    ({"questions": "missing.json"}, r"questions file not found"),
])
def test_load_questions_argument_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        load_questions(**kwargs)


@pytest.mark.parametrize(("content", "match"), [
    ('[{"sent": "a?",\n  "question_id": }]',
     r"bad\.json is not valid JSON: Expecting value at line 2 column 18"),
    ("", r"dataset file is empty"),
    ("[]", r"no questions in .*bad\.json"),
    ('{"foo": 1}', r"cannot tell the format of .*bad\.json"),
    ("[1, 2]", r"cannot tell the format"),
    (json.dumps(VQA_QUESTIONS), r"official VQA questions file: add --annotations"),
    (json.dumps(VQA_ANNOTATIONS), r"annotations file; pass it as --annotations"),
    (json.dumps([LXMERT[0], LXMERT[0], LXMERT[1], LXMERT[1]]),
     r"2 duplicate question ids .* \(first: 2971475, 3397615\)"),
    (json.dumps([{"sent": "  ", "question_id": 1}]), r"bad\.json\[0\]: no question text"),
    (json.dumps([{"sent": "a?", "question_id": 1, "label": ["x"]}]), r"'label' must be an object"),
    (json.dumps([{"sent": "a?", "question_id": 1, "label": {"x": "high"}}]), r"label scores must be numbers"),
    (json.dumps([{"question": "a?", "direct_answers": "cab"}]), r"answers must be a list"),
])
def test_load_questions_file_errors(tmp_path, content, match):
    with pytest.raises(InputError, match=match) as info:
        load_questions(dataset=write_text(tmp_path / "bad.json", content))
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_load_questions_annotations_with_wrong_dataset(tmp_path):
    with pytest.raises(InputError, match="only goes with a VQA questions file"):
        load_questions(dataset=write_json(tmp_path / "lx.json", LXMERT), annotations=tmp_path / "a.json")


def test_load_questions_limit(tmp_path):
    path = write_json(tmp_path / "lx.json", LXMERT)
    assert [q.id for q in load_questions(dataset=path, limit=1)] == ["2971475"]
    assert len(load_questions(dataset=path, limit=10)) == 2
    with pytest.raises(InputError, match="--limit must be at least 1"):
        load_questions(dataset=path, limit=0)


# ---------------------------------------------------------------------------------- images_dir


def test_scan_images_maps_many_name_styles(tmp_path):
    folder = make_images(tmp_path / "imgs", ["COCO_val2014_000000297147.jpg", "000000000042.PNG",
                                             "7.jpeg", "sub/COCO_train2014_000000000009.jpg", "cat.webp"])
    (folder / "notes.txt").write_text("not an image")
    found = scan_images(folder)
    assert set(found) == {"297147", "42", "7", "9", "cat"}
    assert found["9"] == folder / "sub" / "COCO_train2014_000000000009.jpg"


def test_images_dir_sets_paths(tmp_path):
    folder = make_images(tmp_path / "imgs", ["COCO_val2014_000000297147.jpg", "000000339761.jpg"])
    qs = read_lxmert(write_json(tmp_path / "lx.json", LXMERT), images_dir=folder)
    expected = [folder / "COCO_val2014_000000297147.jpg", folder / "000000339761.jpg"]
    assert [q.image_path for q in qs] == expected
    assert qs[0].load_image().size == (2, 2)
    assert qs.skipped == []


def test_images_dir_missing_is_error(tmp_path):
    folder = make_images(tmp_path / "imgs", ["297147.jpg"])
    questions = LXMERT + [dict(LXMERT[1], question_id=1), dict(LXMERT[1], question_id=2, img_id="55")]
    path = write_json(tmp_path / "lx.json", questions)
    match = r"^2 images missing from .*imgs \(first: 339761, 55\);.*--skip-missing"
    with pytest.raises(InputError, match=match):
        load_questions(dataset=path, images_dir=folder)


def test_images_dir_skip_missing_drops_questions(tmp_path):
    folder = make_images(tmp_path / "imgs", ["297147.jpg"])
    path = write_json(tmp_path / "lx.json", LXMERT)
    qs = load_questions(dataset=path, images_dir=folder, skip_missing=True)
    assert [q.id for q in qs] == ["2971475"]
    assert qs.skipped == ["3397615"]


def test_images_dir_only_checks_questions_within_limit(tmp_path):
    folder = make_images(tmp_path / "imgs", ["297147.jpg"])
    qs = load_questions(dataset=write_json(tmp_path / "lx.json", LXMERT), images_dir=folder, limit=1)
    assert [q.id for q in qs] == ["2971475"] and qs[0].image_path == folder / "297147.jpg"


def test_attach_images_does_not_mutate_and_reports_all_missing(tmp_path):
    folder = make_images(tmp_path / "imgs", ["1.jpg"])
    original = [Question("a", "q?", image_id="2")]
    with pytest.raises(InputError, match="none of the 1 questions has an image"):
        attach_images(original, folder, skip_missing=True)
    kept = attach_images(original + [Question("b", "q?", image_id="1")], folder, skip_missing=True)
    assert [q.id for q in kept] == ["b"] and original[0].image_path is None


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_images_dir_folder_errors(tmp_path, kind):
    target = {"missing": tmp_path / "nope", "file": write_text(tmp_path / "f.txt", "x"),
              "empty": make_images(tmp_path / "empty", [])}[kind]
    match = {"missing": "images folder not found", "file": "not a folder", "empty": "no image files"}[kind]
    with pytest.raises(InputError, match=match):
        load_questions(dataset=write_json(tmp_path / "lx.json", LXMERT), images_dir=target)


# ----------------------------------------------------------------------------------- HF datasets


def _tiny_images(n: int):
    from PIL import Image

    return [Image.new("RGB", (3 + i, 2), (i * 40, 0, 0)) for i in range(n)]


def _save_hf(tmp_path: Path):
    import datasets

    features = datasets.Features({
        "question_id": datasets.Value("int64"),
        "question": datasets.Value("string"),
        "image_id": datasets.Value("int64"),
        "question_type": datasets.Value("string"),
        "answers": datasets.List({"answer": datasets.Value("string"),
                                  "raw_answer": datasets.Value("string")}),
        "image": datasets.Image(),
    })
    ds = datasets.Dataset.from_dict({
        "question_id": [11, 12, 13],
        "question": ["What color?", "What animal?", "Which sport?"],
        "image_id": [1, 2, 3],
        "question_type": ["one", "two", "three"],
        "answers": [[{"answer": "red", "raw_answer": "Red"}, {"answer": "red", "raw_answer": "red"}],
                    [{"answer": "dog", "raw_answer": "dogs"}], [{"answer": "ski", "raw_answer": "skiing"}]],
        "image": _tiny_images(3),
    }, features=features)
    folder = tmp_path / "hf"
    ds.save_to_disk(str(folder))
    return folder, ds


def test_hf_save_to_disk_round_trip_with_lazy_images(tmp_path, monkeypatch):
    import datasets

    folder, _ = _save_hf(tmp_path)
    decoded = []
    original = datasets.Image.decode_example

    def counting(self, value, token_per_repo_id=None):
        decoded.append(1)
        return original(self, value, token_per_repo_id=token_per_repo_id)

    monkeypatch.setattr(datasets.Image, "decode_example", counting)
    qs = read_hf_dataset(folder, "train")
    assert decoded == []
    assert [q.id for q in qs] == ["11", "12", "13"]
    assert qs[0].answers == ["red", "red"] and qs[0].raw_answers == ["Red", "red"]
    assert (qs[1].image_id, qs[1].category, qs[1].question_type) == ("2", "two", "two")
    assert qs[2].has_image and qs[2].image_path is None
    image = qs[2].load_image()
    assert image.size == (5, 2) and image.getpixel((0, 0)) == (80, 0, 0)
    assert len(decoded) == 1


def test_hf_dataset_dict_needs_split(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"sent": ["a?", "b?"], "label": [{"x": 1.0}, {"y": 0.5}]})
    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": ds, "validation": ds.select([1])}).save_to_disk(str(folder))
    qs = load_questions(hf_dataset=folder, split="validation")
    assert [(q.id, q.question, q.label) for q in qs] == [("0", "b?", {"y": 0.5})]
    assert qs[0].image is None and qs[0].image_path is None
    # HF stores varying label keys as one struct; absent answers must not become zero-score labels.
    assert load_questions(dataset=folder)[0].label == {"x": 1.0}
    with pytest.raises(InputError, match=r"split 'test' not in .*dd; available: train, validation"):
        read_hf_dataset(folder, "test")


def test_hf_direct_answers_and_path_column(tmp_path):
    import datasets

    make_images(tmp_path / "hfp" / "imgs", ["a.png"])
    ds = datasets.Dataset.from_dict({
        "id": ["x1"], "question": ["q?"], "img_id": ["COCO_val2014_000000000004"],
        "direct_answers": [["cab", "taxi", "cab"]], "file": ["imgs/a.png"]})
    ds.save_to_disk(str(tmp_path / "hfp"))
    q = read_hf_dataset(tmp_path / "hfp", image_column="file")[0]
    assert (q.id, q.image_id, q.answers) == ("x1", "4", ["cab", "taxi", "cab"])
    assert q.image_path == tmp_path / "hfp" / "imgs" / "a.png" and q.load_image().size == (2, 2)


def test_hf_column_errors(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["q?"], "answer": ["a"]}).save_to_disk(str(tmp_path / "noq"))
    with pytest.raises(InputError, match=r"no question column .*columns: text, answer"):
        read_hf_dataset(tmp_path / "noq")
    folder, _ = _save_hf(tmp_path)
    with pytest.raises(InputError, match=r"image column 'picture' not in .*columns: question_id"):
        read_hf_dataset(folder, image_column="picture")
    with pytest.raises(InputError, match=r"column 'image_id' of .* holds neither images nor file paths"):
        read_hf_dataset(folder, image_column="image_id")


def test_hf_missing_local_folder_and_offline_hub(tmp_path, monkeypatch):
    import datasets

    with pytest.raises(InputError, match="HF dataset folder or file not found"):
        read_hf_dataset(tmp_path / "nothing")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'someone/okvqa' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match=r"could not load HF dataset 'someone/okvqa' .*offline\?"):
        load_questions(hf_dataset="someone/okvqa", split="validation")


def test_hf_parquet_file(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    _, ds = _save_hf(tmp_path)
    ds.to_parquet(str(tmp_path / "data.parquet"))
    qs = load_questions(dataset=tmp_path / "data.parquet", limit=2)
    assert [q.id for q in qs] == ["11", "12"] and qs[1].load_image().size == (4, 2)
