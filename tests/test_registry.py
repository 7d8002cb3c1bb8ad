"""The registries (:mod:`pica.registry`): built-ins read from their modules' ``REGISTER`` literals
without an import, entry-point plugins, did-you-mean errors, specs (``--captioner``, ``--llm``),
the settings groups and the config file's group tables; and that adding a built-in answer-choice
rule is one module (the example below is the whole diff)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index

from pica.caption import captioner_spec
from pica.config import FIELDS, GROUPS, Settings, load_config_file
from pica.errors import InputError
from pica.llm import split_llm
from pica.registry import (
    BUILT_IN,
    REGISTRIES,
    Registry,
    backends,
    captioners,
    choice_rules,
    datasets,
    declarations,
    embedders,
)
from pica.types import Example, Question

ROOT = Path(__file__).resolve().parents[1]


def test_the_built_ins_of_every_kind():
    assert set(captioners.builtins()) == {"hf", "cache", "openai", "gguf"}
    assert set(backends.builtins()) == {"llama-cpp", "openai"}
    assert set(embedders.builtins()) == {"open_clip", "sentence-transformers"}
    assert list(choice_rules.builtins()) == ["auto", "learned", "logprob", "vote", "prophet"]
    assert set(datasets.builtins()) == {"dataset", "okvqa", "aokvqa", "hf", "scienceqa"}
    for registry in REGISTRIES.values():
        for entry in registry.entries():
            assert entry.source == BUILT_IN and entry.summary and entry.kind == registry.kind
            module, _, attr = entry.target.partition(":")
            assert registry.get(entry.name).__name__ == attr and module.startswith("pica.")


def test_unknown_names_suggest_the_closest_and_list_every_one():
    with pytest.raises(InputError, match=r"unknown captioner 'ggfu'; did you mean 'gguf'\? available:"
                                         r" cache, gguf, hf, openai$"):
        captioners.get("ggfu")
    with pytest.raises(InputError, match="unknown backend 'opnai'; did you mean 'openai'"):
        backends.get("opnai")


def test_the_declaration_is_read_without_importing(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('import not_a_module_anywhere\n\nREGISTER = {"captioner": {"x": "X",\n'
                      '                        "y": "Y"}}\n\n\nclass X:\n    """Ex."""\n')
    assert declarations(module) == {"captioner": {"x": "X", "y": "Y"}}
    (tmp_path / "n.py").write_text("# REGISTER is only mentioned here\n")
    assert declarations(tmp_path / "n.py") == {}


@pytest.mark.slow
def test_listing_names_imports_no_component_and_help_no_heavy_library():
    code = ("import sys; from pica.registry import REGISTRIES\n"
            "[r.names() for r in REGISTRIES.values()]\n"
            "import pica.cli\n"
            "heavy = ('torch', 'llama_cpp', 'faiss', 'openai', 'pica.caption.hf', 'pica.llm.llama_cpp',"
            " 'pica.retrieval.embedders', 'pica.choice.rules', 'pica.pipeline')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- plugins (entry points) --------------------------------------------------------------------
@pytest.fixture
def fresh(monkeypatch):
    """A fresh captioner registry reading the entry points ``plugins`` holds."""
    plugins: list[importlib.metadata.EntryPoint] = []

    def entry_points(group):
        return [ep for ep in plugins if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return Registry("captioner", ("pica.caption",), "pica.captioners"), plugins


def test_a_plugin_is_listed_and_loaded_and_a_clash_is_a_warning(fresh, capsys):
    registry, plugins = fresh
    plugins += [importlib.metadata.EntryPoint("shout", "fakes:FakeBackend", "pica.captioners"),
                importlib.metadata.EntryPoint("hf", "fakes:FakeEmbedder", "pica.captioners"),
                importlib.metadata.EntryPoint("other", "fakes:FakeBackend", "pica.backends")]
    assert registry.get("hf").__name__ == "HFCaptioner"  # a built-in never reads entry points
    assert capsys.readouterr().err == ""
    assert registry.names() == ["cache", "gguf", "hf", "openai", "shout"]
    assert capsys.readouterr().err.count("\n") == 1  # the clash, once
    assert registry.get("shout") is FakeBackend
    with pytest.raises(InputError, match=r"did you mean 'shout'\? available: cache, gguf, hf, openai, shout"):
        registry.get("shuot")


def test_a_broken_plugin_fails_alone(fresh, capsys):
    registry, plugins = fresh
    plugins += [importlib.metadata.EntryPoint("broken", "not_a_module_anywhere:X", "pica.captioners"),
                importlib.metadata.EntryPoint("shout", "fakes:FakeBackend", "pica.captioners")]
    entries = {e.name: e for e in registry.entries(load=True)}
    assert "ModuleNotFoundError" in entries["broken"].error and not entries["shout"].error
    (line,) = capsys.readouterr().err.splitlines()
    assert "captioner plugin 'broken'" in line and "cannot be imported" in line
    with pytest.raises(InputError, match="captioner plugin 'broken'"):
        registry.get("broken")
    assert registry.get("shout") is FakeBackend and registry.get("cache").__name__ == "CachedCaptioner"


# -- specs ---------------------------------------------------------------------------------------
def test_captioner_specs(tmp_path):
    folder = tmp_path / "odd:name"
    folder.mkdir()
    assert captioner_spec("Salesforce/blip-image-captioning-base") == ("hf", "Salesforce/blip-image-captioning-base")
    assert captioner_spec("hf:Salesforce/blip") == ("hf", "Salesforce/blip")
    assert captioner_spec("caps.jsonl") == ("cache", "caps.jsonl")
    assert captioner_spec("gguf:m.gguf") == ("gguf", "m.gguf")
    assert captioner_spec("openai:vlm") == ("openai", "vlm")
    assert captioner_spec(str(folder)) == ("hf", str(folder))
    with pytest.raises(InputError, match="unknown captioner 'opnai'; did you mean 'openai'"):
        captioner_spec("opnai:vlm")


def test_llm_specs():
    assert split_llm("openai:gpt") == ("openai", "gpt")
    assert split_llm("llama-cpp:m.gguf") == ("llama-cpp", "m.gguf")
    assert split_llm("gemma3-270m") == ("llama-cpp", "gemma3-270m")
    assert split_llm("org/repo:file.gguf") == ("llama-cpp", "org/repo:file.gguf")
    with pytest.raises(InputError, match="unknown backend 'opena'; did you mean 'openai'"):
        split_llm("opena:gpt")


# -- settings groups -------------------------------------------------------------------------------
def test_groups_partition_the_settings_and_components_read_real_fields():
    grouped = [f for fields in GROUPS.values() for f in fields]
    assert sorted(grouped) == sorted(FIELDS) and len(grouped) == len(set(grouped))
    for registry in (captioners, backends, embedders):
        for name in registry.builtins():
            assert set(registry.get(name).settings_fields) <= FIELDS
    assert Settings().group("llm")["llm"] == "gemma3-270m"


def test_config_file_group_tables_and_flat_keys(tmp_path):
    path = tmp_path / "pica.toml"
    path.write_text("[pica]\nshots = 8\n[pica.llm]\nn_ctx = 4096\n[pica.captioner]\nquestion_aware = true\n")
    assert load_config_file(path) == {"shots": 8, "n_ctx": 4096, "question_aware": True}
    path.write_text("shots = 8\n[llm]\nn_ctx = 4096\n")  # top level, no [pica]
    assert load_config_file(path) == {"shots": 8, "n_ctx": 4096}
    path.write_text("[pica.llm]\nshots = 8\n")
    with pytest.raises(InputError, match=r"\[llm\] has no key 'shots'"):
        load_config_file(path)
    path.write_text("[pica]\nn_ctx = 1024\n[pica.llm]\nn_ctx = 4096\n")
    with pytest.raises(InputError, match="'n_ctx' is given twice"):
        load_config_file(path)


def test_the_run_fingerprint_has_not_changed_shape():
    assert Settings().fingerprint() == {
        "captioner": "Salesforce/blip-image-captioning-base", "question_aware": False, "index": "starter",
        "embedder": None,
        "shots": 4, "ensemble": 1, "choose": "auto", "selection": "auto", "weights": {"caption": 0.5},
        "candidates": 0, "candidate_answers": 8, "candidate_neighbours": 32, "example_order": "similar",
        "template": "pica", "llm": "gemma3-270m", "api_base": None, "n_ctx": 2048, "max_tokens": 5,
        "seed": 0, "dtype": "auto"}
    vlm = Settings(captioner="gguf:m.gguf", mmproj="p.gguf").fingerprint()
    assert vlm["mmproj"] == "p.gguf" and vlm["caption_max_side"] == 768


# -- adding a built-in answer-choice rule: one module ---------------------------------------------
LAST_RULE = '''"""The last completion wins (an example rule)."""

from pica.choice.rules import ChoiceRule

REGISTER = {"choice": {"last": "Last"}}


class Last(ChoiceRule):
    """the ensemble's last completion."""

    def pick(self, answers, logprobs):
        """The last one."""
        return len(answers) - 1
'''


@pytest.fixture
def with_last_rule(tmp_path, monkeypatch):
    """``LAST_RULE`` as a module of a stage package the choice registry reads (in the repository
    it would be ``pica/choice/last.py``, nothing else changed)."""
    package = tmp_path / "more_rules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "last.py").write_text(LAST_RULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(choice_rules, "packages", (*choice_rules.packages, "more_rules"))
    choice_rules.refresh()
    yield
    monkeypatch.undo()
    choice_rules.refresh()


def test_a_new_choice_rule_module_is_listed_validated_and_used(with_last_rule, tmp_path):
    from pica.cli.options import _choose_help
    from pica.pipeline import Pipeline

    assert choice_rules.names()[-1] == "last"
    assert "last (the ensemble's last completion)" in _choose_help()
    Settings(choose="last").validate()
    with pytest.raises(InputError, match="did you mean 'last'"):
        Settings(choose="lats").validate()
    index = fake_index(tmp_path / "idx", [Example(id=f"e{i}", question=f"q{i}?", answer=f"a{i}",
                                                  caption="c", image_id=str(i)) for i in range(4)])
    replies = iter([" dog", " cat"])
    backend = FakeBackend(reply=lambda p: next(replies), logprob=lambda p: -1.0)
    pipeline = Pipeline(Settings(index=str(index.path), shots=1, ensemble=2, choose="last"),
                        backend=backend, index=index, embedder=FakeEmbedder())
    assert pipeline.choice_info["method"] == "last"
    assert pipeline.answer(Question(id="q", question="q?", caption="c")).answer == "cat"


def test_dataset_sources_carry_their_fields_in_identity_order():
    from pica.datasets import source_fields

    assert source_fields() == ["dataset", "annotations", "aokvqa", "hf_dataset", "scienceqa_captions",
                               "questions", "scienceqa", "pid_splits"]
    assert {name: datasets.get(name).fields[0] for name in datasets.names()} == {
        "dataset": "dataset", "aokvqa": "aokvqa", "hf": "hf_dataset", "okvqa": "questions",
        "scienceqa": "scienceqa"}
    assert dataclasses.is_dataclass(Settings)
