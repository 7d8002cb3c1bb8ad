"""Third-party plugins: README's "Write a plugin" example, installed as a real distribution outside
the repository (a ``*.dist-info`` folder with ``entry_points.txt`` on ``PYTHONPATH``, which is what
pip leaves behind) and used by ``pica`` in a subprocess: listed by ``pica plugins``, used by
``pica answer``, misspelt names and broken or clashing plugins reported in one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
pytestmark = pytest.mark.slow  # subprocesses


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Write a plugin"):text.index("\n## ", text.index("## Write a plugin") + 1)]


def blocks(language: str) -> list[str]:
    """The fenced blocks of the section in ``language`` (``""``: shell)."""
    found = re.finditer(r"^```(\w*)\n(.*?)^```", readme_section(), re.M | re.S)
    return [m.group(2) for m in found if m.group(1) == language]


def install(site: Path, dist: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]]) -> None:
    """A distribution as pip installs it: its modules and ``NAME-VERSION.dist-info``."""
    for name, code in modules.items():
        (site / f"{name}.py").write_text(code, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in entry_points.items()), encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """README's plugin installed as ``pica-shout`` in a folder outside the repository."""
    site = tmp_path_factory.mktemp("site")
    (code,) = blocks("python")
    (pyproject,) = blocks("toml")
    module = code.splitlines()[0].split(":")[0].lstrip("# ").removesuffix(".py")
    groups = tomllib.loads(pyproject)["project"]["entry-points"]
    install(site, "pica-shout", {module: code}, groups)
    return site


def run(site: Path, cwd: Path, *args: str, extra: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (ROOT, site, extra) if p)
    env.pop("PICA_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "pica", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def readme_command(prefix: str) -> list[str]:
    (shell,) = blocks("")
    (line,) = [c for c in shell.splitlines() if c.startswith(prefix)]
    return shlex.split(line)[1:]


def test_pica_plugins_lists_the_plugin_and_its_distribution(site, tmp_path):
    assert readme_command("pica plugins") == ["plugins"]
    done = run(site, tmp_path, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    shout = {e["name"]: e for e in listing["captioner"]}["shout"]
    echo = {e["name"]: e for e in listing["backend"]}["echo"]
    assert shout["source"] == echo["source"] == "pica-shout 0.1"
    assert shout["summary"] == "Captions every image with its argument, shouted."
    assert {e["source"] for e in listing["captioner"] if e["name"] != "shout"} == {"built-in"}
    text = run(site, tmp_path, "plugins").stdout
    assert re.search(r"^backend +echo +pica-shout 0\.1 +Answers every prompt", text, re.M)


def test_pica_answer_uses_the_plugins_captioner_and_backend(site, tmp_path):
    args = readme_command("pica answer")
    Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp_path / args[1])
    done = run(site, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["caption"] == "HELLO"  # Shout("hello")
    assert answer["answer"] == "paris" and answer["raw"] == "paris"  # Echo("paris")
    assert answer["llm"] == "echo:paris"


@pytest.mark.parametrize("option, value, kind, meant", [
    ("--captioner", "shuot:hello", "captioner", "shout"),
    ("--llm", "ehco:paris", "backend", "echo"),
])
def test_a_misspelt_plugin_name_is_exit_2_with_did_you_mean(site, tmp_path, option, value, kind, meant):
    Image.new("RGB", (32, 32)).save(tmp_path / "p.jpg")
    args = ["answer", "p.jpg", "q?", "--index", "none", "--captioner", "shout:x", "--llm", "echo:x"]
    args[args.index(option) + 1] = value
    done = run(site, tmp_path, *args)
    assert done.returncode == 2
    (line,) = [w for w in done.stderr.splitlines() if w.startswith("error:")]
    assert "Traceback" not in done.stderr
    assert f"unknown {kind} '{value.split(':')[0]}'; did you mean '{meant}'?" in line
    assert meant in line.split("available:")[1]


def test_a_broken_plugin_is_one_line_and_breaks_nothing_else(site, tmp_path):
    other = tmp_path / "other-site"
    other.mkdir()
    install(other, "pica-broken", {"pica_broken": "import not_a_module_anywhere\n"},
            {"pica.captioners": {"broken": "pica_broken:Broken", "hf": "pica_broken:Hf"}})
    listing = run(site, tmp_path, "plugins", "--json", extra=other)
    assert listing.returncode == 0, listing.stderr
    warnings = listing.stderr.splitlines()
    assert any("captioner plugin 'hf' of pica-broken 0.1 is ignored: pica has a built-in" in w
               for w in warnings)
    assert any("'broken'" in w and "pica-broken 0.1" in w and "ModuleNotFoundError" in w for w in warnings)
    entries = {e["name"]: e for e in json.loads(listing.stdout)["captioner"]}
    assert "ModuleNotFoundError" in entries["broken"]["error"]
    assert entries["hf"]["source"] == "built-in" and entries["shout"]["source"] == "pica-shout 0.1"

    Image.new("RGB", (32, 32)).save(tmp_path / "p.jpg")
    used = run(site, tmp_path, "answer", "p.jpg", "q?", "--index", "none", "--captioner", "broken:x",
               "--llm", "echo:x", extra=other)
    assert used.returncode == 2
    (line,) = [w for w in used.stderr.splitlines() if w.startswith("error:")]
    assert "captioner plugin 'broken'" in line and "pica-broken 0.1" in line
    fine = run(site, tmp_path, "answer", "p.jpg", "q?", "--index", "none", "--captioner", "shout:ok",
               "--llm", "echo:yes", "--json", extra=other)
    assert fine.returncode == 0, fine.stderr
    assert json.loads(fine.stdout)["caption"] == "OK"
