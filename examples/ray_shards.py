"""Caption a dataset's images and build its example index on a Ray cluster: one Ray task per
shard for `pica caption --shard K/N`, then one per shard for `pica index build --shard K/N`, then
`pica index merge`. One vision-language server (vLLM, llama-server, or a pool behind a load
balancer) is the captioning engine; pica stays its client and Ray does the scheduling.

    pip install "pica[ray]"
    vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000 &
    python examples/ray_shards.py --dataset okvqa_train.json --images train2014/ \
        --captioner openai:Qwen/Qwen2.5-VL-7B-Instruct --api-base http://vllm-host:8000/v1 \
        --shards 16 --out indexes/okvqa-train [--address auto]

Each task runs the same command a Slurm array job would (README, "Past one machine"), so a
task that dies is simply retried by Ray: `pica caption` resumes its shard's file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def pica(*args: str) -> str:
    """Run one pica command in this worker; its output, or an error with pica's one-line message."""
    done = subprocess.run([sys.executable, "-m", "pica", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pica {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def main(argv: list[str] | None = None) -> Path:
    """Run the sharded caption + index build; return the merged index folder."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--captioner", required=True, help="e.g. openai:MODEL")
    parser.add_argument("--api-base", required=True, help="the vision server, e.g. http://host:8000/v1")
    parser.add_argument("--out", required=True, help="index folder to create")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per task")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="index batch size (the one-shot build it equals uses the same)")
    parser.add_argument("--question-aware", action="store_true")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")
    args = parser.parse_args(argv)

    import ray

    ray.init(address=args.address, num_cpus=args.num_cpus, include_dashboard=False,
             log_to_driver=False)
    out = Path(args.out)
    work = out.with_name(out.name + ".parts")
    work.mkdir(parents=True, exist_ok=True)
    n = args.shards
    qa = ["--question-aware"] if args.question_aware else []

    @ray.remote(max_retries=2)
    def caption_shard(k: int) -> str:
        path = work / f"captions.{k}.jsonl"
        pica("caption", str(path), "--dataset", args.dataset, "--images", args.images, *qa,
             "--captioner", args.captioner, "--captioner-api-base", args.api_base,
             "--concurrency", str(args.concurrency), "--shard", f"{k}/{n}", "--no-progress")
        return str(path)

    @ray.remote(max_retries=2)
    def index_shard(k: int, captions: str) -> str:
        path = work / f"index.{k}"
        pica("index", "build", str(path), "--dataset", args.dataset, "--captions", captions,
             "--shard", f"{k}/{n}", "--batch-size", str(args.batch_size), "--overwrite")
        return str(path)

    parts = ray.get([caption_shard.remote(k) for k in range(n)])
    captions = work / "captions.jsonl"
    with captions.open("w", encoding="utf-8") as f:  # caption shards are disjoint: concatenate
        for k, part in enumerate(parts):  # each starts with the same mark line: keep the first
            lines = Path(part).read_text(encoding="utf-8").splitlines(keepends=True)
            f.writelines(lines if k == 0 else lines[1:])
    shards = ray.get([index_shard.remote(k, str(captions)) for k in range(n)])
    ray.shutdown()
    print(pica("index", "merge", str(out), *shards, "--overwrite"), end="")
    return out


if __name__ == "__main__":
    main()
