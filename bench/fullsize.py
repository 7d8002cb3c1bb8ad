"""Real-size architectures on random weights, and COCO-like images, for throughput benchmarks.

BLIP-base (``BlipConfig()`` defaults are Salesforce/blip-image-captioning-base's shapes: ViT-B/16
at 384 px, 12-layer BERT decoder, 30,524-word vocabulary) and open_clip ViT-B-32 (its packaged
config, 224 px) are built from their configs and saved as local folders, so nothing is
downloaded. Random weights never emit end-of-sequence, so every caption runs the full
``max_new_tokens`` (30) decoding steps; a trained BLIP stops after about 10-12, so real captioning
is faster than measured here.

Needs only torch, transformers, open_clip_torch, numpy, pillow and safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BLIP_VOCAB = 30524
CLIP_ARCH = "ViT-B-32"


def make_blip_base(path: str | Path) -> Path:
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
    config = BlipConfig()
    config.text_config.bos_token_id = BLIP_VOCAB - 2
    model = BlipForConditionalGeneration(config).eval()
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}),
                              tokenizer=tokenizer)
    processor.save_pretrained(path)
    model.save_pretrained(path)
    return path


def make_clip_b32(path: str | Path) -> Path:
    """Save a random-weight open_clip ViT-B-32 as a ``local-dir`` folder (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    if (path / "open_clip_config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model_cfg = open_clip.get_model_config(CLIP_ARCH)
    model = open_clip.create_model(CLIP_ARCH, pretrained=None)
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
