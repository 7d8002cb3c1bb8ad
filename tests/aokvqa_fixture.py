"""Small A-OKVQA files written by the tests (official field names, COCO 2017 image ids).

Rows follow ``aokvqa_v1p0_{split}.json``: ``question_id`` (a string), ``image_id`` (a COCO 2017
number), ``question``, ``choices`` (4), ``correct_choice_idx``, ``direct_answers`` (10),
``difficult_direct_answer`` and ``rationales`` (3). Topics come from the OK-VQA fixture and
repeat across train and val, so retrieval finds real neighbours; one val question is difficult.
"""

from __future__ import annotations

import json
from pathlib import Path

from okvqa_fixture import TOPICS


def _rows(split: str, offset: int, count: int, first_image: int) -> tuple[list[dict], dict[str, str]]:
    rows, captions = [], {}
    for i in range(count):
        t = (i + offset) % len(TOPICS)
        caption, question, answer, alt, _ = TOPICS[t]
        distractors = [TOPICS[(t + k) % len(TOPICS)][2] for k in (3, 5, 7)]
        choices = distractors[:2] + [answer] + distractors[2:]  # the correct one third
        image_id = first_image + i
        rows.append({
            "split": split, "image_id": image_id, "question_id": f"{split}Q{i:03d}",
            "question": question, "choices": choices, "correct_choice_idx": 2,
            "direct_answers": [answer] * 6 + [alt] * 4,
            "difficult_direct_answer": split == "val" and i == 1,
            "rationales": [f"The picture shows {caption}.", f"It is {answer}.", "Common knowledge."],
        })
        captions[str(image_id)] = caption
    return rows, captions


def write_aokvqa_fixture(folder: Path, train_size: int = 20, val_size: int = 10) -> dict[str, Path]:
    """Write aokvqa_v1p0_train.json, aokvqa_v1p0_val.json and captions.tsv; return their paths."""
    train, train_caps = _rows("train", 0, train_size, 400_000)
    val, val_caps = _rows("val", 3, val_size, 500_000)
    paths = {"train": folder / "aokvqa_v1p0_train.json", "val": folder / "aokvqa_v1p0_val.json",
             "captions": folder / "captions.tsv"}
    paths["train"].write_text(json.dumps(train), encoding="utf-8")
    paths["val"].write_text(json.dumps(val), encoding="utf-8")
    lines = [f"{k}\t{json.dumps([{'caption': v, 'conf': 0.9}])}" for k, v in {**train_caps, **val_caps}.items()]
    paths["captions"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths
