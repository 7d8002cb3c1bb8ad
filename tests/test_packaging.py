"""The wheel carries everything a non-editable install needs, and no top-level ``cli`` module."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_package_data_and_no_top_level_cli(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("pica-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pica/data/starter_examples.jsonl" in names
    for template in ("pica.toml", "lean.toml", "prophet.toml", "report.html.j2", "report.css",
                     "report.js", "report_card.html.j2", "compare.html.j2", "compare.css", "serve.html"):
        assert f"pica/templates/{template}" in names, template
    assert "pica/cli/__init__.py" in names
    assert "cli.py" not in names  # the checkout's thin entry is not installed as a module
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "pica = pica.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    with zipfile.ZipFile(wheel) as z:
        starter = z.read("pica/data/starter_examples.jsonl").decode()
    assert starter == (ROOT / "pica" / "data" / "starter_examples.jsonl").read_text()
