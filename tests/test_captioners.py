"""Captioners: tiny random BLIP / GIT checkpoints through HFCaptioner, cached captions, dispatch."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from tiny_models import make_tiny_blip, make_tiny_git, make_tiny_vision_encoder_decoder

from pica.caption import is_captions_file, make_captioner
from pica.caption.base import one_line, strip_prompt
from pica.caption.cached import CachedCaptioner
from pica.caption.hf import HFCaptioner
from pica.config import PROMPTCAP_PROMPT
from pica.errors import InputError, ModelLoadError
from pica.types import Question

QUESTIONS = ["what color is the car?", "what is this?", "why is the zzyzx here?"]


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    return make_tiny_blip(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def git_dir(tmp_path_factory):
    return make_tiny_git(tmp_path_factory.mktemp("git"))


@pytest.fixture(scope="module", params=["blip", "git"])
def model_dir(request, blip_dir, git_dir):
    return {"blip": blip_dir, "git": git_dir}[request.param]


@pytest.fixture(scope="module")
def images():
    # A grayscale image too: the captioner must convert it to RGB itself.
    return [Image.new("RGB", (40, 30), "red"), Image.new("L", (20, 50), 30),
            Image.new("RGB", (64, 64), "white")]


# --- the prompt-stripping helper -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "prompts", "expected"),
    [
        # BERT decoders lowercase and re-space the prompt ("question : what").
        ("please describe this image according to the given question : what is it? a red car",
         ("Please describe this image according to the given question: What is it?",), "a red car"),
        ("PLEASE   describe\nthis image a dog", ("please describe this image",), "a dog"),
        # Unknown words vanish when decoded, so the decoded prompt is tried first.
        ("describe the here? a boat", ("describe the here?", "describe the zzyzx here?"), "a boat"),
        ("describe the here? a boat", ("describe the zzyzx here?", "describe the here?"), "a boat"),
        # No prompt prefix: the text comes back whole, on one line.
        ("a cat on\n a mat ", ("please describe",), "a cat on a mat"),
        ("please", ("please describe",), "please"),
        ("anything", ("",), "anything"),
        ("please describe", ("please describe",), ""),
    ],
)
def test_strip_prompt(text, prompts, expected):
    assert strip_prompt(text, *prompts) == expected


def test_one_line():
    assert one_line("  a\tb\n\nc  ") == "a b c"


# --- HFCaptioner on tiny checkpoints -------------------------------------------------------------

def test_caption_batch_is_deterministic_and_batch_independent(model_dir, images):
    captioner = HFCaptioner(str(model_dir), max_new_tokens=8, batch_size=2)
    assert captioner.id == f"hf:{model_dir.resolve()}"
    first = captioner.caption_images(images)
    assert len(first) == len(images)
    assert all(isinstance(c, str) and c == one_line(c) for c in first)
    assert any(first)
    assert captioner.caption_images(images) == first
    # Batching (2 + 1 here) must not change any caption or its order.
    assert [captioner.caption_images([im])[0] for im in images] == first
    assert captioner.caption([]) == []


def test_captions_depend_on_the_image(model_dir, images):
    captions = HFCaptioner(str(model_dir), max_new_tokens=8).caption_images(images)
    assert len(set(captions)) > 1


def test_question_aware_strips_prompt_and_groups_prompts(model_dir, images):
    captioner = HFCaptioner(str(model_dir), question_aware=True, max_new_tokens=8)
    captions = captioner.caption_images(images, QUESTIONS)
    assert len(captions) == 3
    for caption, question in zip(captions, QUESTIONS, strict=True):
        assert caption == one_line(caption)
        assert not caption.lower().startswith("please describe")
        assert question not in caption
    assert captioner.caption_images(images, QUESTIONS) == captions
    # Prompts of different token lengths are generated in separate groups; order is preserved.
    singles = [captioner.caption_images([im], [q])[0] for im, q in zip(images, QUESTIONS, strict=True)]
    assert singles == captions


def test_question_conditions_the_caption(model_dir, images):
    captioner = HFCaptioner(str(model_dir), question_aware=True, max_new_tokens=8)
    image = images[0]
    by_question = {q: captioner.caption_images([image], [q])[0] for q in QUESTIONS}
    assert len(set(by_question.values())) > 1
    plain = HFCaptioner(str(model_dir), max_new_tokens=8).caption_images([image])[0]
    assert plain not in by_question.values()


def test_custom_prompt(git_dir, images):
    captioner = HFCaptioner(str(git_dir), question_aware=True, prompt="question: {question} answer:",
                            max_new_tokens=5)
    (caption,) = captioner.caption_images(images[:1], ["what is this?"])
    assert not caption.startswith("question")


@pytest.mark.slow
def test_separate_image_processor_and_tokenizer(tmp_path, images):
    # ViT-GPT2-style checkpoints: AutoProcessor returns only the tokenizer.
    folder = make_tiny_vision_encoder_decoder(tmp_path / "ved")
    captioner = HFCaptioner(str(folder), max_new_tokens=6)
    captions = captioner.caption_images(images)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert captioner.caption_images(images) == captions
    with pytest.raises(InputError, match="takes no text prompt"):
        HFCaptioner(str(folder), question_aware=True)


def test_question_aware_needs_questions(blip_dir, images):
    captioner = HFCaptioner(str(blip_dir), question_aware=True, max_new_tokens=4)
    with pytest.raises(InputError, match="question"):
        captioner.caption_images(images)
    with pytest.raises(InputError, match="3 images but 1 questions"):
        captioner.caption_images(images, ["what?"])


@pytest.mark.parametrize("prompt", ["describe the image", "describe {thing}: {question}"])
def test_bad_prompt_template(blip_dir, prompt):
    with pytest.raises(InputError, match="prompt"):
        HFCaptioner(str(blip_dir), question_aware=True, prompt=prompt)


def _assert_load_error(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message
    assert "caption=TEXT" in message and "captioner=FOLDER" in message  # the Python API's words
    for word in words:
        assert word in message


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError) as excinfo:
        HFCaptioner(str(tmp_path / "no-such-model"))
    _assert_load_error(excinfo, "not found", "no-such-model")


def test_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError) as excinfo:
        HFCaptioner(str(tmp_path))
    _assert_load_error(excinfo, "config.json", str(tmp_path))


def test_folder_with_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}))
    with pytest.raises(ModelLoadError) as excinfo:
        HFCaptioner(str(tmp_path))
    _assert_load_error(excinfo, str(tmp_path))


def test_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as excinfo:
        HFCaptioner("no-such-org/no-such-captioner-xyz")
    _assert_load_error(excinfo, "no-such-org/no-such-captioner-xyz", "offline")


def test_unknown_hub_id_unreachable_hub_fails_fast(monkeypatch):
    import huggingface_hub.constants

    import pica.caption.hf

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(pica.caption.hf, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError) as excinfo:
        HFCaptioner("no-such-org/no-such-captioner-xyz")
    _assert_load_error(excinfo, "no-such-org/no-such-captioner-xyz", "cannot be reached")


# --- cached captions -----------------------------------------------------------------------------

@pytest.fixture
def captions_tsv(tmp_path):
    path = tmp_path / "captions.tsv"
    rows = {
        "391895": [{"caption": "a man riding a motorcycle down a dirt road.", "conf": 0.74}],
        "522418": [{"caption": "a woman cutting a cake.", "conf": 0.5},
                   {"caption": "a woman cutting a cake with a knife.", "conf": 0.9}],
        "42": [{"caption": "a dog\non a couch", "conf": 0.6}],
    }
    path.write_text("".join(f"{k}\t{json.dumps(v)}\n" for k, v in rows.items()), encoding="utf-8")
    return path


def by_ids(ids):
    """Questions carrying only image ids, as a dataset without image files gives them."""
    return [Question(id=f"q{i}", question="what is this?", image_id=image_id) for i, image_id in enumerate(ids)]


def test_cached_captions_by_coco_ids(captions_tsv):
    captioner = CachedCaptioner(captions_tsv)
    assert captioner.id == "cache:captions.tsv"
    ids = ["COCO_val2014_000000391895", "000000522418.jpg", "42", "391895"]
    assert captioner.caption(by_ids(ids)) == [
        "a man riding a motorcycle down a dirt road.",
        "a woman cutting a cake with a knife.",
        "a dog on a couch",
        "a man riding a motorcycle down a dirt road.",
    ]
    assert captioner.caption([]) == []


def test_cached_captions_missing_ids(captions_tsv):
    captioner = CachedCaptioner(captions_tsv)
    ids = ["42", "COCO_val2014_000000000007", "8", "9", "10", "11", "12"]
    with pytest.raises(InputError, match=r"6 of 7 image ids have no caption.*COCO_val2014_000000000007, 8"):
        captioner.caption(by_ids(ids))
    with pytest.raises(InputError) as excinfo:
        captioner.caption(by_ids(ids))
    assert "12" not in str(excinfo.value).split("first:")[1]  # only the first few are named


def test_cached_captioner_reads_ids_not_pixels(captions_tsv, tmp_path):
    captioner = CachedCaptioner(captions_tsv)
    assert captioner.reads_pixels is False
    gone = Question(id="q", question="what?", image_id="42", image_path=tmp_path / "missing.jpg")
    assert captioner.caption([gone]) == ["a dog on a couch"]  # the file is never opened


def test_cached_captioner_missing_file(tmp_path):
    with pytest.raises(InputError):
        CachedCaptioner(tmp_path / "nope.tsv")


# --- make_captioner ------------------------------------------------------------------------------

def test_is_captions_file(tmp_path):
    assert is_captions_file("captions.TSV") and is_captions_file("x/c.jsonl")
    assert is_captions_file("c.csv") and is_captions_file("c.json")
    assert not is_captions_file("Salesforce/blip-image-captioning-base")
    (tmp_path / "model.json").mkdir()
    assert not is_captions_file(str(tmp_path / "model.json"))  # a folder is a model


def test_make_captioner_dispatch(captions_tsv, blip_dir, tmp_path):
    cached = make_captioner(str(captions_tsv))
    assert isinstance(cached, CachedCaptioner)
    assert make_captioner(str(captions_tsv)) is cached  # built once per process

    model = make_captioner(str(blip_dir))
    assert isinstance(model, HFCaptioner) and not model.question_aware
    assert make_captioner(str(blip_dir)) is model
    aware = make_captioner(str(blip_dir), question_aware=True)
    assert aware is not model and aware.question_aware and aware.prompt == PROMPTCAP_PROMPT

    with pytest.raises(InputError, match="captions file not found"):
        make_captioner(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ModelLoadError):
        make_captioner(str(tmp_path / "missing-model"))
