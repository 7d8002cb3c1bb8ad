"""A small OK-VQA-style dataset written by the tests (not copied from OK-VQA).

Topics repeat across pool and dev so retrieval has real neighbours to find. Files use the
formats of ../shared/okvqa: LXMERT-style JSON lists and a PICa captions TSV.
"""

from __future__ import annotations

import json
from pathlib import Path

# (caption, question, answer, alternative answer, category)
TOPICS = [
    ("a man swinging a tennis racket on a court", "What sport is being played?", "tennis", "racket sport", 4),
    ("a surfer riding a big wave in the ocean", "What is this person doing?", "surfing", "surf", 4),
    ("a plate with a slice of pepperoni pizza", "Which country is this dish from?", "italy", "italian", 5),
    ("a bowl of sushi rolls with chopsticks", "What country is this food from?", "japan", "japanese", 5),
    ("a red double decker bus on a city street", "In which city are these buses common?", "london", "england", 1),
    ("a yellow taxi parked next to a curb", "What is this vehicle used for?", "transport", "taxi", 1),
    ("a giraffe standing next to a tall tree", "What does this animal eat?", "leaves", "plants", 8),
    ("a black and white cow in a grass field", "What drink do we get from this animal?", "milk", "dairy", 8),
    ("a laptop computer on a wooden desk", "What brand is this laptop?", "apple", "dell", 2),
    ("a snowy street with people holding umbrellas", "What season is it?", "winter", "cold", 10),
]


def _rows(offset: int, count: int, split_id: int) -> tuple[list[dict], dict[str, str]]:
    rows, captions = [], {}
    for i in range(count):
        caption, question, answer, alt, category = TOPICS[(i + offset) % len(TOPICS)]
        image_id = 100_000 + split_id * 10_000 + i
        variant = "" if i < len(TOPICS) else f" seen from {['above', 'the side', 'far away'][i % 3]}"
        rows.append({"sent": question, "question_id": image_id * 10 + 5,
                     "img_id": f"COCO_val2014_{image_id:012d}", "label": {answer: 1, alt: 0.667},
                     "class": category})
        captions[str(image_id)] = caption + variant
    return rows, captions


def write_okvqa_fixture(folder: Path, pool_size: int = 30, dev_size: int = 10) -> dict[str, Path]:
    """Write pool.json, dev.json and captions.tsv into ``folder``; return their paths."""
    pool, pool_caps = _rows(0, pool_size, 1)
    dev, dev_caps = _rows(3, dev_size, 2)
    paths = {"pool": folder / "pool.json", "dev": folder / "dev.json", "captions": folder / "captions.tsv"}
    paths["pool"].write_text(json.dumps(pool), encoding="utf-8")
    paths["dev"].write_text(json.dumps(dev), encoding="utf-8")
    lines = [f"{k}\t{json.dumps([{'caption': v, 'conf': 0.9}])}" for k, v in {**pool_caps, **dev_caps}.items()]
    paths["captions"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths
