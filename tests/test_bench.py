"""Every bench script runs: its ``--smoke`` mode, as a subprocess from the repository root.

A smoke run takes seconds on tiny inputs (the OK-VQA fixture, the packaged Gemma on <= 3
questions, small random-weight models, synthetic vectors), writes only under a temporary folder and
needs no ../shared data. Each test checks the exit status, a figure line of the script's output,
and that neither BENCHMARKS.md nor bench/out was touched. The commands BENCHMARKS.md names must
use flags the scripts still have.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
HELPERS = {"common"}  # imported by the scripts, not a script
VISION = ("torch", "transformers", "open_clip")
LLAMA_SERVER = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
NUMBER = r"-?[\d.]+"

# script -> (a line its smoke output must contain, as a regex; optional modules it needs)
SMOKE: dict[str, tuple[str, tuple[str, ...]]] = {
    "aokvqa_mc": (rf"\| after \| summed log-prob minus that under a content-free query \(N/A\) \| {NUMBER} ± {NUMBER} \|"
                  rf" {NUMBER} ± {NUMBER} \| {NUMBER} \| \d+ \|", ()),
    "caption_throughput": (rf"\| 4 \| \d+ \| {NUMBER} ± {NUMBER} \| \d+ \| {NUMBER}% \| {NUMBER}% \| {NUMBER} \|", ()),
    "api_parity": (rf"\| OpenAI-compatible server \| {NUMBER} \| \d/1 \(\d+%\) \| no \|", LLAMA_SERVER),
    "chat_overhead": (rf"\| /v1/chat/completions \| \d+ \| {NUMBER} ± {NUMBER} \| {NUMBER} ± {NUMBER} \|"
                      rf" {NUMBER} ± {NUMBER} \| {NUMBER} ± {NUMBER} \|", ()),
    "chooser": (rf"\| \*\*chooser\*\*: .* \| {NUMBER} \| [+-]{NUMBER} ± {NUMBER} \|", ()),
    "chooser_stages": (rf"Target of issue 22 .*: \*\*(met|missed), {NUMBER}× ± {NUMBER}\*\* \(n=3\)", ()),
    "chooser_models": (rf"versus - base, trees-d2: [+-]{NUMBER} ± {NUMBER}", ()),
    "chooser_tables": (r"3 candidate tables \(\d+ candidates\) -> .* and, scored as answer\+end, -> ", ()),
    "concurrency": (rf"\| this checkout \| 4 \| busy \| 1 \| {NUMBER} ± {NUMBER} \| {NUMBER} ± {NUMBER} \|", ()),
    "fullsize": (r"fullsize smoke: 4 examples indexed, kinds question, image", VISION),
    "gpu_check": (r"PASS gpu_check: 0 failed of \d+ checks", VISION),
    "hf_compare": (rf"\| pica defaults \(4 shots\) \| \d+ \| transformers \| {NUMBER} \|", ("torch", "transformers")),
    "index_scale": (rf"\| hnsw \| {NUMBER} \| \d+ \| \d+ \| [01]\.\d{{3}} \| {NUMBER} \|", ()),
    "index_throughput": (rf"\| caption\+image \| 4 \| 2 \| 1 \| dataloader \| 2 \| {NUMBER} \|", VISION),
    "llama_settings": (rf"\| 1 \| 32 \| off \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", ()),
    "okvqa": (rf"\| \*\*default\*\*: .* \| [+-]{NUMBER} ± {NUMBER} \| {NUMBER} / {NUMBER} \|", ()),
    "prophet": (rf"\| prophet: Prophet path: .* \| {NUMBER} ± {NUMBER} \| [+-]{NUMBER} ± {NUMBER} \| {NUMBER} \|", ()),
    "rerank": (rf"\| oracle: best of the candidates \| {NUMBER} \|", ()),
    "scienceqa": (rf"\| QCM-A score, calibrated \| {NUMBER} ± {NUMBER} \| 2 \| [+-]{NUMBER} ± {NUMBER} \(n=2\) \|"
                  rf" - \(scored\) \| {NUMBER} \|", ()),
    "tuning": (rf"\| pica-5 x3 vote \| .* \| {NUMBER} ± {NUMBER} \| {NUMBER} \|", ()),
}
TIMEOUT = 600  # a hang guard for a loaded 2-core machine, not a speed limit


def scripts() -> set[str]:
    return {p.stem for p in BENCH.glob("*.py")} - HELPERS


def untouched() -> tuple[str, dict[str, int]]:
    """BENCHMARKS.md's hash and the files under bench/out with their modification times."""
    text = (ROOT / "BENCHMARKS.md").read_bytes() if (ROOT / "BENCHMARKS.md").exists() else b""
    out = ROOT / "bench" / "out"
    files = {str(p): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} if out.is_dir() else {}
    return hashlib.sha256(text).hexdigest(), files


def cpu_seconds() -> float:
    """CPU time of the finished child processes so far (for the record, never asserted)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_every_script_has_a_smoke_test():
    assert scripts() == set(SMOKE), "add each bench script (and only those) to SMOKE in tests/test_bench.py"


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_smoke(name, tmp_path):
    pattern, needs = SMOKE[name]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"bench/{name}.py needs {', '.join(missing)} (not installed)")
    before = untouched()
    # Temporary folders of the run go under tmp_path; pica's cache (the starter index) and index
    # root are the session's (tests/conftest.py), so nothing lands in the user's folders.
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("OUT", None)
    start, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run([sys.executable, f"bench/{name}.py", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    output = done.stdout + done.stderr
    print(f"bench/{name}.py --smoke: {time.perf_counter() - start:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU")
    assert done.returncode == 0, output[-4000:]
    assert f"smoke run of bench/{name}.py in {tmp_path}" in output, output[-4000:]
    assert re.search(pattern, output), f"no line matching {pattern!r} in:\n{output[-4000:]}"
    assert untouched() == before, "a smoke run wrote to BENCHMARKS.md or bench/out"


def benchmarks_commands() -> list[tuple[str, list[str]]]:
    """Each ``bench/NAME.py ...`` command quoted in BENCHMARKS.md: the script and its flags."""
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"`(?:python )?bench/(\w+)\.py([^`]*)`", text):
        found.append((match.group(1), re.findall(r"(?<!\S)(--[\w-]+)", match.group(2))))
    return found


def test_benchmarks_commands_use_existing_flags():
    commands = benchmarks_commands()
    assert commands, "BENCHMARKS.md names no bench command"
    helps: dict[str, str] = {}
    for name, flags in commands:
        assert name in scripts(), f"BENCHMARKS.md names bench/{name}.py, which does not exist"
        if name not in helps:
            done = subprocess.run([sys.executable, f"bench/{name}.py", "--help"], cwd=ROOT, capture_output=True,
                                  text=True, timeout=TIMEOUT)
            assert done.returncode == 0, done.stderr[-2000:]
            helps[name] = done.stdout
        for flag in flags:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[name]), \
                f"BENCHMARKS.md runs bench/{name}.py {flag}, which the script does not accept"
