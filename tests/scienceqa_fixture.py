"""A small ScienceQA-style dataset written by the tests (made up here, not copied from ScienceQA).

Files use ScienceQA's own formats (problems.json, pid_splits.json, captions.json, images at
``{split}/{pid}/image.png``); the problems cover every table column (NAT SOC LAN, TXT IMG NO,
G1-6 G7-12), some with two choices and some with three or four.
"""

from __future__ import annotations

import json
from pathlib import Path

# (question, choices, answer, hint, image?, subject, grade, caption, lecture, solution)
TOPICS = [
    ("Which animal has fur?", ["a frog", "a bear"], 1, "", False, "natural science", "grade2", "",
     "Mammals have fur.\nBirds have feathers.", "A bear is a mammal. It has fur."),
    ("Which state is farthest north?", ["Texas", "Montana", "Florida"], 1, "", True, "social science",
     "grade4", "A map of the United States.", "Maps show directions.", "Montana is farthest north."),
    ("Which word is a noun?", ["run", "quickly", "table", "blue"], 2, "", False, "language science",
     "grade3", "", "A noun names a thing.", "Table names a thing."),
    ("What is the temperature of a hot bath?", ["40°C", "40°F"], 0,
     "Select the better estimate.", False, "natural science", "grade8", "",
     "Temperature can be written in degrees.", "A hot bath is about 40°C."),
    ("Which material is this spoon made of?", ["metal", "paper"], 0, "Look at the picture.", True,
     "natural science", "grade9", "A shiny spoon on a table.", "Materials have properties.",
     "The spoon is made of metal."),
    ("Which tense does the sentence use?\nShe walked home.", ["past", "future", "present"], 0, "",
     False, "language science", "grade7", "", "Verbs show tense.", "Walked is in the past tense."),
]


def problems(count: int, offset: int, split: str, first_pid: int) -> dict[str, dict]:
    """``count`` problems of ``split`` (pids from ``first_pid``), cycling through :data:`TOPICS`."""
    out = {}
    for i in range(count):
        q, choices, answer, hint, image, subject, grade, _caption, lecture, solution = TOPICS[(i + offset) % len(TOPICS)]
        out[str(first_pid + i)] = {
            "question": q, "choices": list(choices), "answer": answer, "hint": hint,
            "image": "image.png" if image else None, "task": "closed choice", "grade": grade,
            "subject": subject, "topic": subject.split()[0], "category": "c", "skill": "s",
            "lecture": lecture, "solution": solution, "split": split}
    return out


def write_scienceqa_fixture(folder: Path, train: int = 12, val: int = 6, images: bool = False) -> dict[str, Path]:
    """Write problems.json, pid_splits.json and captions.json (and, with ``images``, a PNG per
    problem with an image) into ``folder``; return their paths (``images``: the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {**problems(train, 0, "train", 1), **problems(val, 1, "val", 1001)}
    splits = {"train": [p for p, v in data.items() if v["split"] == "train"],
              "val": [p for p, v in data.items() if v["split"] == "val"]}
    captions = {pid: TOPICS[_topic(v)][7] for pid, v in data.items() if v["image"]}
    paths = {"problems": folder / "problems.json", "pid_splits": folder / "pid_splits.json",
             "captions": folder / "captions.json"}
    paths["problems"].write_text(json.dumps(data, indent=1), encoding="utf-8")
    paths["pid_splits"].write_text(json.dumps(splits), encoding="utf-8")
    paths["captions"].write_text(json.dumps({"model": "fixture", "captions": captions}), encoding="utf-8")
    if images:
        from PIL import Image

        for pid, v in data.items():
            if v["image"]:
                target = folder / "images" / v["split"] / pid / "image.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (32, 32), (int(pid) * 37 % 256, 90, 160)).save(target)
        paths["images"] = folder / "images"
    return paths


def _topic(problem: dict) -> int:
    return next(i for i, t in enumerate(TOPICS) if t[0] == problem["question"])
