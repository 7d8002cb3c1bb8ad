"""README's examples are tests: every fenced code block is read from README.md at test time, and
every command in it either runs here exactly as written or is on SKIP with the reason it cannot.

Commands run in README order in one folder tree laid out as README assumes: the repository root
(the working folder, with ``indexes/`` and ``runs/`` written into it) beside ``../shared``, which
holds the small OK-VQA-format fixture under the real file names (tests/okvqa_fixture.py, never the
real data) and a ScienceQA-format one (tests/scienceqa_fixture.py) and a generated ``glove_boy.jpeg``. Files a reader brings along (``photo.jpg``,
``my_examples.jsonl``, the A-OKVQA files) are written by the fixture too. The first two README
commands (between the ``main-command`` / ``test-command`` markers) make a venv and install; only
the ``pica`` part of the first runs (the test-command runs this very suite).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# (pattern, reason): a command matching one is not run. Every rule must still match a command.
SKIP: list[tuple[str, str]] = [
    (r"^python -m pytest -q$", "the test-command: runs this very suite"),
    (r"^pica answer photo\.jpg \"What sport can you use this for\?\"$",
     "captions with BLIP, a hub download (offline machine)"),
    (r"^pica answer photo\.jpg \"\.\.\.\" --(index|question-aware|ensemble)",
     "captions with BLIP (hub download) or names a local BLIP folder"),
    (r"^pica answer photo\.jpg \"\.\.\.\" --llm ", "needs a GGUF file or an API server that is not here"),
    (r"^pica serve", "starts a server that runs until stopped (tests/test_serve.py covers it)"),
    (r"^curl ", "needs a running `pica serve` (tests/test_serve.py covers the API)"),
    (r"--questions OpenEnded_mscoco_train2014_questions\.json",
     "needs COCO train2014 images and annotations, BLIP and open_clip downloads"),
    (r"--hf-dataset NAME_OR_SAVED_PATH", "placeholder dataset name"),
    (r"^pica eval \S+ --dataset \.\.\. ", "placeholder arguments (`...`)"),
    (r"^pica eval \S+ \.\.\. ", "placeholder arguments (`...`)"),
    (r"^vllm serve|^llama-server ", "starts a GPU model server"),
    (r"^CMAKE_ARGS=", "rebuilds llama-cpp-python from source (network, CUDA/Metal toolchain)"),
    (r"--captioner openai:", "needs a served vision-language model (tests/test_vision_captioner.py covers it)"),
    (r"--captioner gguf:ggml-org/", "downloads a GGUF VLM from the hub (tests/test_gguf_captioner.py builds one)"),
    (r"^N=16; K=\$SLURM_ARRAY_TASK_ID", "shell variables of a Slurm array job"),
    (r" \.\.\.$", "placeholder arguments (`...`)"),
    (r"--candidates-file assets/", "needs Prophet's released files (tests/test_prophet.py uses fixtures)"),
    (r"^# pica_shout\.py", "the plugin example: tests/test_plugins.py installs it and runs its commands"),
    (r"--captioner shout:", "needs the example plugin installed (tests/test_plugins.py installs it and runs this)"),
    (r"OpenAI\(base_url=\"http://127\.0\.0\.1:7860/v1\"",
     "needs a running `pica serve` (tests/test_openai_serve.py asks it with the openai client)"),
    (r"^(OPENAI_API_KEY=\S+ OPENAI_API_BASE=\S+ )?python -m lmms_eval ",
     "needs lmms-eval, the hub's OK-VQA/ScienceQA and a running `pica serve` (tests/test_openai_serve.py"
     " sends lmms-eval-shaped requests)"),
    (r"^echo '\{\"model\": \{\"pica\": \{\"class\": \"GPT4V\"",
     "writes VLMEvalKit's config inside a VLMEvalKit clone, for the next command"),
    (r"^python run\.py --config pica_vlmeval\.json",
     "needs a VLMEvalKit clone, its datasets and a running `pica serve` (tests/test_openai_serve.py sends"
     " VLMEvalKit-shaped requests)"),
]

# Reader-supplied files the fixture writes, and the captions of the fixture's images.
EXAMPLES = [{"id": "m1", "caption": "a man swinging a tennis racket on a court",
             "question": "What sport is being played?", "answer": "tennis"},
            {"id": "m2", "caption": "a plate with a slice of pepperoni pizza",
             "question": "Which country is this dish from?", "answer": "italy"}]


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block of README.md, in order."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(\w*)\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)]


def readme_commands() -> list[str]:
    """Every command of README's blocks, in order: a ``python`` block is one command (run as a
    script), a ``toml`` block none (a file's text), a shell block gives one per non-comment line (backslash continuations joined); of the venv-making marker commands
    only the part after the last ``&&`` (``pica answer ...``, ``python -m pytest -q``)."""
    commands = []
    for language, text in readme_blocks():
        if language == "toml":  # a file's text, not commands
            continue
        if language == "python":
            commands.append(text)
            continue
        text = re.sub(r"\\\n\s*", " ", text)  # a command continued with a backslash is one command
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("python3 -m venv"):
                line = line.rsplit("&&", 1)[1].strip()
            commands.append(line)
    return commands


def skip_reason(command: str) -> str | None:
    """The SKIP reason of a command, or ``None`` when it is to run."""
    for pattern, reason in SKIP:
        if re.search(pattern, command):
            return reason
    return None


def runnable() -> list[str]:
    return [c for c in readme_commands() if skip_reason(c) is None]


def test_every_readme_command_is_run_or_skipped_for_a_reason():
    commands = readme_commands()
    assert len(commands) > 20 and any(c.startswith("pica index build") for c in commands)
    unused = [p for p, _ in SKIP if not any(re.search(p, c) for c in commands)]
    assert not unused, f"SKIP rules that match no README command (remove them): {unused}"
    known = re.compile(r"^(pica |python -c |from pica)")
    strays = [c for c in runnable() if not known.match(c)]
    assert not strays, f"README commands that are neither runnable here nor on SKIP: {strays}"


def test_the_python_api_block_passes_cached_captions():
    python = [c for c in readme_commands() if c.startswith("from pica")]
    assert len(python) == 1 and "captioner=" in python[0]  # runs offline: no BLIP download


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The repository root as README's commands see it: ``../shared`` beside it."""
    from aokvqa_fixture import write_aokvqa_fixture
    from okvqa_fixture import write_okvqa_fixture
    from PIL import Image
    from scienceqa_fixture import write_scienceqa_fixture

    base = tmp_path_factory.mktemp("readme")
    repo, okvqa, images = base / "pica", base / "shared" / "okvqa", base / "shared" / "images"
    for folder in (repo, okvqa, images):
        folder.mkdir(parents=True)
    files = write_okvqa_fixture(okvqa)
    shutil.move(files["pool"], okvqa / "okvqa_val2014_pool.json")
    shutil.move(files["dev"], okvqa / "okvqa_val2014_dev.json")
    with files["captions"].open("a", encoding="utf-8") as f:  # the Python API block's image
        f.write(f"297147\t{json.dumps([{'caption': 'a man swinging a tennis racket', 'conf': 0.9}])}\n")
    shutil.move(files["captions"], okvqa / "VinVL_base_val2014.tsv")
    Image.new("RGB", (64, 64), (200, 150, 90)).save(images / "glove_boy.jpeg")
    Image.new("RGB", (64, 64), (90, 140, 60)).save(repo / "photo.jpg")
    (repo / "my_examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES), encoding="utf-8")
    write_aokvqa_fixture(repo)
    write_scienceqa_fixture(base / "shared" / "scienceqa")
    return repo


@pytest.mark.slow
@pytest.mark.parametrize("command", runnable(), ids=lambda c: c.splitlines()[0][:60])
def test_readme_command_runs_as_written(command, tree):
    env = {k: v for k, v in os.environ.items() if k != "PICA_INDEX_DIR"}  # README's ./indexes
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-c", command] if command.startswith("from pica") else ["bash", "-c", command]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.stdout.strip(), done.stderr
    assert "Traceback" not in done.stderr
