"""Tests for the self-contained HTML report (pica.evaluation.report)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pica.errors import InputError
from pica.evaluation.cards import gold_items
from pica.evaluation.report import natural_key, write_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    def text(self) -> str:
        """All text inside this node, in document order."""
        return "".join(self.parts)

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if child.tag == tag and (cls is None or cls in (child.attrs.get("class") or "").split()):
                found.append(child)
            found.extend(child.find_all(tag, cls))
        return found


class TreeBuilder(HTMLParser):
    """A tiny DOM built with the stdlib parser; fails loudly on mismatched tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        for node in self.stack:
            node.parts.append(data)


def parse(text: str) -> Node:
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    assert [n.tag for n in builder.stack] == ["#root"], "unclosed tags"
    return builder.root


XSS = "<script>alert(1)</script> what is this?"


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jpg"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(path, format="JPEG")
    return path


@pytest.fixture
def results(tmp_path: Path, image_file: Path) -> pd.DataFrame:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not really a jpeg")
    rows = []
    for i in range(8):
        rows.append(
            {
                "question_id": f"q{i}",
                "question": f"What sport is played here number {i}?",
                "image_id": str(100 + i),
                "image_path": None,
                "caption": f"a man riding a wave {i}",
                "prompt": f"Please answer the question.\n===\nContext: caption {i}\n===\nQ: q{i}\nA:",
                "raw": " surfing\n",
                "logprob": -0.25 * i,
                "answer": "surfing",
                "score": [1.0, 0.0, 0.6, 1.0, 0.0, 0.3, 1.0, 0.0][i],
                "gold": json.dumps(["surfing"] * 7 + ["surf"] * 3),
                "category": "2" if i % 2 else "10",
                "question_type": "other",
                "example_ids": json.dumps([["e1", "e2"]]),
                "seconds": 0.5,
                "prompt_tokens": 300,
            }
        )
    rows[0]["question"] = XSS
    rows[1]["image_path"] = str(image_file)
    rows[2]["image_path"] = str(tmp_path / "missing.jpg")
    rows[3]["image_path"] = str(broken)
    rows[4]["gold"] = json.dumps({"surfing": 1.0, "surf board": 0.6})
    rows[5]["category"] = None
    rows[5]["logprob"] = None
    rows[6]["prompt"] = None
    return pd.DataFrame(rows)


@pytest.fixture
def summary() -> dict:
    return {
        "accuracy": 48.75,
        "n": 8,
        "per_category": {"10": {"accuracy": 40.0, "n": 4}, "2": {"accuracy": 57.5, "n": 4}},
        "per_question_type": {"other": {"accuracy": 48.75, "n": 8}},
        "seconds_per_question": 0.5,
        "prompt_tokens_per_second": 900.0,
        "config": {"shots": 16, "backend": "llama_cpp", "captioner": "<b>cached</b>", "n": [1, 2]},
        "dataset": "okvqa dev",
        "created": "2025-01-01T00:00:00",
    }


def render(results, summary, tmp_path, **kwargs) -> tuple[str, Node]:
    out = write_report(results, summary, tmp_path / "sub" / "report.html", **kwargs)
    assert out == tmp_path / "sub" / "report.html"
    text = out.read_text(encoding="utf-8")
    return text, parse(text)


def test_header_and_config(results, summary, tmp_path):
    text, root = render(results, summary, tmp_path)
    stats = root.find_all("div", "stats")[0].text()
    assert "48.75%" in stats and "accuracy ± 1 SE (n=8)" in stats and "0.50" in stats and "900" in stats
    table = root.find_all("table", "config")[0]
    config = {tds[0].text(): tds[1].text() for tr in table.find_all("tr") if (tds := tr.find_all("td"))}
    assert config["shots"] == "16"
    assert config["captioner"] == "<b>cached</b>"  # shown as text, not markup
    assert "<b>cached</b>" not in text
    assert config["n"] == "1, 2"


def test_category_bars_sorted_and_labelled(results, summary, tmp_path):
    _, root = render(results, summary, tmp_path)
    svg = root.find_all("svg", "chart")
    assert len(svg) == 1
    bars = svg[0].find_all("rect", "bar")
    assert len(bars) == 2
    groups = svg[0].find_all("g", "row")
    assert [g.attrs["data-name"] for g in groups] == ["2", "10"]  # numeric-aware order
    labels = [g.find_all("text")[0].text() for g in groups]
    values = [g.find_all("text", "value")[0].text() for g in groups]
    assert labels == ["2", "10"]
    assert values == ["57.50% (n=4)", "40.00% (n=4)"]  # 2 decimals, as everywhere
    summary["per_category"]["10"]["name"] = "Weather and Climate"  # summaries name OK-VQA categories
    _, root = render(results, summary, tmp_path)
    assert [g.find_all("text")[0].text() for g in root.find_all("g", "row")] == ["2", "10 Weather and Climate"]
    widths = [float(b.attrs["width"]) for b in bars]
    assert widths[0] > widths[1] > 0
    assert widths[0] / widths[1] == pytest.approx(57.5 / 40.0, rel=1e-2)


def test_question_types_table(results, summary, tmp_path):
    _, root = render(results, summary, tmp_path)
    table = root.find_all("table", "qtypes")
    assert len(table) == 1
    cells = [td.text() for td in table[0].find_all("td")]
    assert cells[:4] == ["other", "48.75", "–", "8"]  # no SE in this summary: a dash

    summary["per_question_type"] = {}
    _, root = render(results, summary, tmp_path)
    assert root.find_all("table", "qtypes") == []


def test_gallery_cards_scores_and_gold(results, summary, tmp_path):
    _, root = render(results, summary, tmp_path)
    cards = root.find_all("div", "card")
    assert len(cards) == 8
    kinds = [next(c for c in ("ok", "part", "bad") if c in card.attrs["class"].split()) for card in cards]
    assert kinds == ["ok", "bad", "part", "ok", "bad", "part", "ok", "bad"]
    assert [card.attrs["data-category"] for card in cards][:2] == ["10", "2"]
    assert cards[5].attrs["data-category"] == "(none)"
    list_gold = [li.text() for li in cards[1].find_all("li")]
    assert list_gold == ["surfing ×7", "surf ×3"]
    soft_gold = [li.text() for li in cards[4].find_all("li")]
    assert soft_gold == ["surfing 1.00", "surf board 0.60"]
    assert "a man riding a wave 1" in cards[1].find_all("p", "cap")[0].text()
    assert "0.50 s" in cards[1].find_all("div", "meta")[0].text()


def test_user_text_is_escaped(results, summary, tmp_path):
    text, root = render(results, summary, tmp_path)
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # The only script element is the report's own filter code.
    scripts = root.find_all("script")
    assert len(scripts) == 1 and "alert" not in scripts[0].text()
    assert root.find_all("div", "card")[0].find_all("p", "q")[0].text() == XSS


def test_thumbnail_only_for_loadable_image(results, summary, tmp_path):
    _, root = render(results, summary, tmp_path, thumb_px=64)
    cards = root.find_all("div", "card")
    with_img = [i for i, card in enumerate(cards) if card.find_all("img")]
    assert with_img == [1]  # missing and broken files are skipped silently
    src = cards[1].find_all("img")[0].attrs["src"]
    assert src.startswith("data:image/jpeg;base64,")
    import base64
    import io

    thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert thumb.format == "JPEG" and max(thumb.size) == 64


def test_no_external_resources(results, summary, tmp_path):
    text, root = render(results, summary, tmp_path)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "http" not in text
    assert root.find_all("link") == []
    assert all("src" not in s.attrs for s in root.find_all("script"))
    assert len(root.find_all("style")) == 1


def test_details_with_prompt_per_card(results, summary, tmp_path):
    _, root = render(results, summary, tmp_path)
    cards = root.find_all("div", "card")
    for i, card in enumerate(cards):
        details = card.find_all("details")
        assert len(details) == 1
        pre = details[0].find_all("pre")
        assert len(pre) == 1
        expected = "(no prompt recorded)" if i == 6 else results.loc[i, "prompt"]
        assert pre[0].text() == expected


def test_max_gallery_truncation(results, summary, tmp_path):
    text, root = render(results, summary, tmp_path, max_gallery=3)
    assert len(root.find_all("div", "card")) == 3
    note = root.find_all("p", "note")
    assert len(note) == 1 and "first 3 of 8" in note[0].text() and "5 left out" in note[0].text()

    text, root = render(results, summary, tmp_path)
    assert root.find_all("p", "note") == []


def test_missing_columns_and_values(summary, tmp_path):
    frame = pd.DataFrame([{"question_id": "x", "question": "Why?", "score": None}])
    summary = {"accuracy": None, "per_category": {}}
    _, root = render(frame, summary, tmp_path)
    cards = root.find_all("div", "card")
    assert len(cards) == 1 and "card" in cards[0].attrs["class"]
    assert cards[0].attrs["data-score"] == ""
    assert root.find_all("svg") == []


def test_atomic_write_and_bad_arguments(results, summary, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    write_report(results, summary, out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(InputError, match="folder"):
        write_report(results, summary, tmp_path)
    with pytest.raises(InputError, match="max_gallery"):
        write_report(results, summary, out, max_gallery=-1)


def test_helpers():
    assert sorted(["10", "2", "1", "cat10", "cat9"], key=natural_key) == ["1", "2", "10", "cat9", "cat10"]
    assert gold_items('["a", "b", "a"]') == [("a", "×2"), ("b", "×1")]
    assert gold_items({"b": 0.3, "a": 1}) == [("a", "1.00"), ("b", "0.30")]
    assert gold_items(None) == [] and gold_items(float("nan")) == []
