"""Real-size architectures on random weights, and COCO-like images, for throughput benchmarks.

BLIP-base (``BlipConfig()`` defaults are Salesforce/blip-image-captioning-base's shapes: ViT-B/16
at 384 px, 12-layer BERT decoder, 30,524-word vocabulary) and open_clip ViT-B-32 (its packaged
config, 224 px) are built from their configs and saved as local folders, so nothing is
downloaded. Random weights never emit end-of-sequence, so every caption runs the full
``max_new_tokens`` (30) decoding steps; a trained BLIP stops after about 10-12, so real captioning
is faster than measured here. ``small=True`` shrinks widths and depths (same vocabularies, same
files, same loading code) for smoke runs.

Needs only torch, transformers, open_clip_torch, numpy, pillow and safetensors.

    python bench/fullsize.py                 # save both models and 96 images into bench/out/fullsize
    python bench/fullsize.py --smoke         # small models and 4 images in a temporary folder, indexed
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

BLIP_VOCAB = 30524
CLIP_ARCH = "ViT-B-32"
# small=True: BLIP and ViT-B-32 with one 32-wide layer per tower and 64 px images.
SMALL_BLIP = {
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
    "text_config": {"hidden_size": 32, "encoder_hidden_size": 32, "intermediate_size": 64,
                    "num_hidden_layers": 1, "num_attention_heads": 2},
    "projection_dim": 32, "image_text_hidden_size": 32,
}
SMALL_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "patch_size": 32, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_blip_base(path: str | Path, small: bool = False) -> Path:
    """Save a random-weight BLIP-base captioner (model + processor) into ``path`` (once)."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    path = Path(path)
    if (path / "config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    # BERT's layout: [PAD] 0, [unused*], [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103; BLIP adds
    # [DEC] (its decoder BOS, 30522) and [ENC].
    words = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [f"w{i}" for i in range(BLIP_VOCAB - 2 - len(words))] + ["[DEC]", "[ENC]"]
    (path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(path / "vocab.txt"), bos_token="[DEC]", model_max_length=512)
    torch.manual_seed(0)
    config = BlipConfig(**SMALL_BLIP) if small else BlipConfig()
    config.text_config.bos_token_id = BLIP_VOCAB - 2
    model = BlipForConditionalGeneration(config).eval()
    side = config.vision_config.image_size
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": side, "width": side}),
                              tokenizer=tokenizer)
    processor.save_pretrained(path)
    model.save_pretrained(path)
    return path


def make_clip_b32(path: str | Path, small: bool = False) -> Path:
    """Save a random-weight open_clip ViT-B-32 as a ``local-dir`` folder (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    if (path / "open_clip_config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    overrides = SMALL_CLIP if small else {}
    model_cfg = {**open_clip.get_model_config(CLIP_ARCH), **overrides}
    model = open_clip.create_model(CLIP_ARCH, pretrained=None, **overrides)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "open_clip_model.safetensors"))
    config = {"model_cfg": model_cfg,
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                 "std": list(open_clip.OPENAI_DATASET_STD), "interpolation": "bicubic",
                                 "resize_mode": "shortest"}}
    (path / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def make_images(folder: str | Path, count: int, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """``count`` COCO-sized JPEGs (smooth colour fields with detail, quality 90, ~60-120 kB each)
    named like COCO files; existing ones are kept."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"COCO_train2014_{i:012d}.jpg"
        if not path.is_file():
            rng = np.random.default_rng(i)
            coarse = Image.fromarray(rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
            noise = rng.normal(0, 18, size=(size[1], size[0], 3))
            pixels = np.clip(np.asarray(coarse, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def questions_for(paths: list[Path]):
    """One solved question per image, as a dataset reader would give them."""
    from pica.types import Question

    return [Question(id=str(i), question=f"What is shown in picture {i}?", image_id=str(i), image_path=p,
                     answers=["something"] * 10) for i, p in enumerate(paths)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "fullsize",
                        help="folder of blip-base/, clip-b32/ and images/ (bench/index_throughput.py's)")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--smoke", action="store_true",
                        help="small models and 4 small images in a temporary folder, then an index of them")
    args = parser.parse_args()
    if not args.smoke:
        blip, clip = make_blip_base(args.out / "blip-base"), make_clip_b32(args.out / "clip-b32")
        print(f"{blip}, {clip}, {len(make_images(args.out / 'images', args.images))} images in {args.out / 'images'}")
        return
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import smoke_folder

    from pica.retrieval.build import build_index
    from pica.retrieval.index import ExampleIndex

    torch.set_num_threads(1)  # small models: a second thread only spins on a busy machine
    with smoke_folder("fullsize") as folder:
        start = time.perf_counter()
        blip, clip = make_blip_base(folder / "blip", small=True), make_clip_b32(folder / "clip", small=True)
        questions = questions_for(make_images(folder / "images", 4, size=(96, 72)))
        out = build_index(folder / "index", questions, captioner=str(blip), embedder=f"open_clip:{clip}",
                          batch_size=2, workers=2, device="cpu", progress=False)
        index = ExampleIndex.load(out)
        words = len(index.example(0).caption.split())
        print(f"fullsize smoke: {len(index)} examples indexed, kinds {', '.join(index.kinds)}, captions of"
              f" {words} words, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
