"""``pica compare``: runs matched by question id, paired differences with their SE checked against
an independent computation, groups (OK-VQA categories, A-OKVQA DA/MC, ScienceQA columns, question
types), speed ratios, runs of older pica versions and runs in progress, refusals, the page in a
real browser, and two real ``pica eval`` runs compared end to end."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pica.cli import app
from pica.evaluation.compare import compare_runs, paired_difference, time_ratio
from pica.evaluation.compare_view import format_comparison, render_compare_page
from pica.evaluation.runlock import RunLock

runner = CliRunner()


def row(qid: str, score: float, answer: str = "x", *, category: int | None = 8, qtype: str = "what",
        seconds: float = 0.5, **extra) -> dict:
    """A results.jsonl row as pica eval writes it (OK-VQA, LXMERT soft labels)."""
    llm = seconds * 0.8
    return {"question_id": qid, "question": f"question {qid}?", "image_id": f"1{qid}", "image_path": None,
            "caption": f"caption of {qid}", "prompt": f"Context: caption of {qid}\n===\nQ: question {qid}?\nA:",
            "prompts": [f"prompt {qid}"], "raw": f" {answer}", "logprob": -0.5, "answer": answer,
            "gold": {"tennis": 1.0, "racket": 0.6}, "category": category, "question_type": qtype,
            "example_ids": ["e1", "e2"], "candidates": [], "seconds": seconds, "seconds_caption": 0.0,
            "seconds_retrieval": seconds - llm, "seconds_llm": llm, "seconds_mc": 0.0, "prompt_tokens": 120,
            "task": "da", "score": score, "counted": True, **extra}


def write_run(folder: Path, rows: list[dict], *, settings: dict | None = None, finished: bool = True,
              run_json: bool = True, **recorded) -> Path:
    """A run folder: results.jsonl, run.json and (when ``finished``) summary.json, as pica writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = {"settings": {"shots": 4, "llm": "gemma3-270m", **(settings or {})}, "dataset": {"dataset": "dev.json"}}
    if run_json:
        (folder / "run.json").write_text(json.dumps({"config": config, "pica_version": "0.9", **recorded}))
    if finished:
        (folder / "summary.json").write_text(json.dumps({"accuracy": 0.0, "config": config, **recorded}))
    return folder


def scores(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.choice([0.0, 0.0, 0.6, 1.0]) for _ in range(n)]


@pytest.fixture
def two_runs(tmp_path):
    n = 40
    sa, sb = scores(1, n), scores(2, n)
    a = write_run(tmp_path / "a", [row(f"q{i}", s, "racket", category=[8, 5][i % 2], qtype=["what", "which"][i % 3 == 0],
                                       seconds=0.4 + 0.01 * i) for i, s in enumerate(sa)])
    b = write_run(tmp_path / "b", [row(f"q{i}", s, "tennis", category=[8, 5][i % 2], qtype=["what", "which"][i % 3 == 0],
                                       seconds=0.9 + 0.02 * (i % 7)) for i, s in enumerate(sb)],
                  settings={"shots": 2})
    return a, b, sa, sb


def independent(a: list[float], b: list[float]) -> tuple[float, float]:
    """Paired difference and SE in points: mean of b - a, sample sd (ddof 1) / sqrt(n)."""
    d = [y - x for x, y in zip(a, b, strict=True)]
    return 100 * statistics.fmean(d), 100 * statistics.stdev(d) / math.sqrt(len(d))


def test_paired_difference_matches_an_independent_computation(two_runs):
    a, b, sa, sb = two_runs
    pair = compare_runs([a, b]).pairs[0]
    diff, se = independent(sa, sb)
    assert pair["n"] == 40
    assert pair["difference"] == pytest.approx(diff, abs=0.005)
    assert pair["se"] == pytest.approx(se, abs=0.005)
    assert pair["ci95"] == pytest.approx([diff - 1.96 * se, diff + 1.96 * se], abs=0.02)
    assert pair["b_wins"] == sum(y > x for x, y in zip(sa, sb, strict=True))
    assert pair["a_wins"] == sum(y < x for x, y in zip(sa, sb, strict=True))
    assert pair["b_wins"] + pair["a_wins"] + pair["ties"] == 40
    assert len(pair["flipped"]) == pair["b_wins"] + pair["a_wins"]
    # The paired SE is smaller than the unpaired one when the errors are correlated.
    same = paired_difference(sa, [min(1.0, s + 0.4) for s in sa])
    assert same["se"] < math.hypot(100 * statistics.stdev(sa), 100 * statistics.stdev(sa)) / math.sqrt(40)


def test_each_run_and_each_category_and_question_type(two_runs):
    a, b, sa, sb = two_runs
    comparison = compare_runs([a, b])
    runs = comparison.to_dict()["runs"]
    assert [r["run"] for r in runs] == [str(a), str(b)]
    assert runs[0]["accuracy"] == pytest.approx(100 * statistics.fmean(sa), abs=0.005)
    assert runs[0]["se"] == pytest.approx(100 * statistics.stdev(sa) / math.sqrt(40), abs=0.005)
    assert runs[1]["seconds"] == pytest.approx(statistics.fmean(0.9 + 0.02 * (i % 7) for i in range(40)), abs=1e-4)
    groups = {g["label"]: g for g in comparison.pairs[0]["categories"]}
    assert list(groups)[:2] == ["5 Cooking and Food", "8 Plants and Animals"]
    odd = [i for i in range(40) if i % 2]
    diff, se = independent([sa[i] for i in odd], [sb[i] for i in odd])
    assert groups["5 Cooking and Food"]["n"] == 20
    assert groups["5 Cooking and Food"]["difference"] == pytest.approx(diff, abs=0.005)
    assert groups["5 Cooking and Food"]["se"] == pytest.approx(se, abs=0.005)
    assert groups["type: which"]["n"] == len(range(0, 40, 3))
    assert comparison.differences == {"shots": [4, 2]}


def test_speed_ratio_and_its_paired_se(two_runs):
    a, b, _, _ = two_runs
    speed = {s["stage"]: s for s in compare_runs([a, b]).pairs[0]["speed"]}
    assert set(speed) == {"total", "retrieval", "llm"}  # stages that took no time are left out
    ta = [0.4 + 0.01 * i for i in range(40)]
    tb = [0.9 + 0.02 * (i % 7) for i in range(40)]
    r = statistics.fmean(tb) / statistics.fmean(ta)
    se = statistics.stdev([y - r * x for x, y in zip(ta, tb, strict=True)]) / math.sqrt(40) / statistics.fmean(ta)
    assert speed["total"]["ratio"] == pytest.approx(r, abs=0.001)
    assert speed["total"]["se"] == pytest.approx(se, abs=0.001)
    assert time_ratio([0.0, 0.0], [1.0, 2.0]) is None  # nothing to divide by
    assert time_ratio([1e-5, 2e-5], [0.3, 0.4]) is None  # nor a stage that took no measurable time


def test_only_shared_questions_are_compared_and_the_others_counted(tmp_path):
    a = write_run(tmp_path / "a", [row(f"q{i}", 1.0) for i in range(10)])
    b = write_run(tmp_path / "b", [row(f"q{i}", 0.0) for i in range(4, 16)])
    comparison = compare_runs([a, b])
    assert comparison.shared == [f"q{i}" for i in range(4, 10)]
    runs = comparison.to_dict()["runs"]
    assert [(r["questions"], r["left_out"], r["n"]) for r in runs] == [(10, 4, 6), (12, 6, 6)]
    assert comparison.pairs[0]["difference"] == -100.0 and comparison.pairs[0]["a_wins"] == 6
    assert any("4 of 10 questions left out" in note for note in comparison.notes)
    assert any("6 of 12 questions left out" in note for note in comparison.notes)


def test_three_runs_each_against_the_baseline(tmp_path):
    rows = [row(f"q{i}", 0.0) for i in range(6)]
    a = write_run(tmp_path / "a", rows)
    b = write_run(tmp_path / "b", [row(f"q{i}", float(i < 3)) for i in range(6)])
    c = write_run(tmp_path / "c", [row(f"q{i}", 1.0) for i in range(6)])
    pairs = compare_runs([a, b, c]).pairs
    assert [(p["a_label"], p["b_label"], p["difference"]) for p in pairs] == [("A", "B", 50.0), ("A", "C", 100.0)]
    assert pairs[1]["se"] == 0.0 and pairs[1]["ci95"] == [100.0, 100.0]


def test_runs_sharing_no_question_are_refused_with_one_line(tmp_path):
    a = write_run(tmp_path / "a", [row(f"q{i}", 1.0) for i in range(3)])
    b = write_run(tmp_path / "b", [row(f"z{i}", 1.0) for i in range(3)])
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "share no question" in result.stderr
    assert "Traceback" not in result.output


def test_same_id_with_other_gold_answers_is_refused(tmp_path):
    a = write_run(tmp_path / "a", [row(f"q{i}", 1.0) for i in range(3)])
    b = write_run(tmp_path / "b", [row(f"q{i}", 1.0, gold={"cat": 1.0}) for i in range(3)])
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2
    assert "different gold answers" in result.stderr and "different datasets" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["{a}"], "two or more run folders"),
    (["{a}", "{a}"], "given twice"),
    (["{a}", "{missing}"], "no such folder"),
    (["{a}", "{empty}"], "results.jsonl missing"),
])
def test_bad_arguments_exit_2(tmp_path, args, message):
    a = write_run(tmp_path / "a", [row("q1", 1.0)])
    (tmp_path / "empty").mkdir()
    paths = {"a": a, "missing": tmp_path / "nope", "empty": tmp_path / "empty"}
    result = runner.invoke(app, ["compare", *(x.format(**paths) for x in args)])
    assert result.exit_code == 2 and message in result.stderr


def test_older_runs_and_runs_in_progress(tmp_path):
    old_rows = [{"question_id": f"q{i}", "question": f"question q{i}?", "answer": "x", "score": s,
                 "gold": {"tennis": 1.0, "racket": 0.6}, "category": 8, "seconds": 1.0} for i, s in enumerate([1.0, 0.0, 1.0])]
    old = write_run(tmp_path / "old", old_rows, run_json=False, finished=False)
    live = write_run(tmp_path / "live", [row(f"q{i}", 1.0) for i in range(2)], finished=False,
                     questions_total=1285, limit=3)
    with open(old / "results.jsonl", "a") as f:
        f.write('{"torn": ')  # a line torn by a kill: skipped, and the file is left as it is
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with RunLock(live):  # this test plays the running `pica eval`
        comparison = compare_runs([old, live])
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before  # read only
    runs = comparison.to_dict()["runs"]
    assert [r["status"] for r in runs] == ["not finished", "in progress"]
    assert comparison.differences == {}  # an older run records no settings: nothing to tell apart
    assert comparison.pairs[0]["n"] == 2 and comparison.pairs[0]["difference"] == 50.0
    notes = " | ".join(comparison.notes)
    assert "pica eval is still running" in notes and "1 bad line(s)" in notes
    text = format_comparison(comparison)
    assert "2 of 1,285 questions (--limit 3)" in text and "in progress" in text
    assert compare_runs([old, live]).to_dict()["runs"][1]["status"] == "not finished"  # lock released
    (live / "summary.json").write_text(json.dumps({"questions": 1}))  # written before a resume
    assert compare_runs([old, live]).to_dict()["runs"][1]["status"] == "not finished"
    (live / "summary.json").write_text(json.dumps({"questions": 2}))
    assert compare_runs([old, live]).to_dict()["runs"][1]["status"] == "finished"


def test_aokvqa_direct_answer_and_multiple_choice_groups(tmp_path):
    def aok(qid, da, mc, difficult=False):
        return row(qid, da, task="both", da_score=da, mc_correct=mc, difficult=difficult, counted=not difficult,
                   choices=["a", "b", "c", "d"], correct_choice_idx=1, category=None, question_type=None)
    a = write_run(tmp_path / "a", [aok("1", 0.0, 0.0), aok("2", 1.0, 1.0), aok("3", 0.0, 0.0, difficult=True)])
    b = write_run(tmp_path / "b", [aok("1", 1.0, 1.0), aok("2", 1.0, 1.0), aok("3", 1.0, 1.0, difficult=True)])
    pair = compare_runs([a, b]).pairs[0]
    groups = {g["key"]: g for g in pair["categories"]}
    assert list(groups) == ["DA", "MC"]
    assert (groups["DA"]["n"], groups["DA"]["difference"]) == (2, 50.0)  # difficult left out of DA
    assert (groups["MC"]["n"], groups["MC"]["difference"]) == (3, pytest.approx(66.67))
    assert pair["n"] == 2  # the headline is the DA score


def test_scienceqa_columns(tmp_path):
    def sqa(qid, s, columns):
        return row(qid, s, task="scienceqa", columns=columns, gold=None, correct_choice_idx=0,
                   category="Genes to traits", question_type=None)
    cols = [["NAT", "IMG", "G1-6"], ["SOC", "TXT", "G7-12"], ["NAT", "NO", "G7-12"]]
    a = write_run(tmp_path / "a", [sqa(str(i), 0.0, c) for i, c in enumerate(cols)])
    b = write_run(tmp_path / "b", [sqa(str(i), float(i != 1), c) for i, c in enumerate(cols)])
    groups = [g for g in compare_runs([a, b]).pairs[0]["categories"] if g["kind"] == "column"]
    assert [g["key"] for g in groups] == ["NAT", "SOC", "TXT", "IMG", "NO", "G1-6", "G7-12"]
    nat = groups[0]
    assert (nat["n"], nat["difference"], nat["b_wins"]) == (2, 100.0, 2)


def test_json_and_table_on_the_command_line(two_runs):
    a, b, sa, sb = two_runs
    result = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("run", "accuracy", "se", "n", "seconds"):
        assert key in data["runs"][0]
    pair = data["pairs"][0]
    for key in ("a", "b", "n", "difference", "se", "ci95", "b_wins", "a_wins", "ties", "categories"):
        assert key in pair
    assert (pair["a"], pair["b"]) == (str(a), str(b))
    table = runner.invoke(app, ["compare", str(a), str(b)])
    assert table.exit_code == 0
    diff, se = independent(sa, sb)
    assert f"B - A: {diff:+.2f} ± {se:.2f} points" in table.stdout
    assert "8 Plants and Animals" in table.stdout and "shots: A 4, B 2" in table.stdout


def test_html_path_guard(two_runs, tmp_path):
    a, b, _, _ = two_runs
    folder = tmp_path / "out"
    folder.mkdir()
    result = runner.invoke(app, ["compare", str(a), str(b), "--html", str(folder)])
    assert result.exit_code == 2 and "is a folder" in result.stderr
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    result = runner.invoke(app, ["compare", str(a), str(b), "--html", str(mine)])
    assert result.exit_code == 2 and "not a page pica compare wrote" in result.stderr
    assert mine.read_text() == "<p>my notes</p>"
    report = write_run(tmp_path / "run", [row("q1", 1.0)]) / "report.html"
    report.write_text("<!DOCTYPE html>\n<title>pica report</title>")  # a run's report is not replaced
    assert runner.invoke(app, ["compare", str(a), str(b), "--html", str(report)]).exit_code == 2
    page = tmp_path / "pages" / "cmp.html"
    for _ in range(2):  # its own page is rewritten
        result = runner.invoke(app, ["compare", str(a), str(b), "--html", str(page)])
        assert result.exit_code == 0, result.output
    assert page.read_text().startswith("<!DOCTYPE html>") and not list(page.parent.glob(".*tmp*"))


def test_page_escapes_and_lists_the_flips(tmp_path):
    a = write_run(tmp_path / "a", [row("q1", 0.0, "<b>bold</b>"), row("q2", 1.0, "tennis")])
    b = write_run(tmp_path / "b", [row("q1", 1.0, "tennis"), row("q2", 1.0, "tennis")])
    html = render_compare_page(compare_runs([a, b]))
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert html.count('class="flip ') == 1 and 'data-question-id="q1"' in html
    assert '<svg class="forest"' in html


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.slow
def test_page_in_a_real_browser(two_runs, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    a, b, _, _ = two_runs
    page_path = tmp_path / "compare.html"
    assert runner.invoke(app, ["compare", str(a), str(b), "--html", str(page_path)]).exit_code == 0
    pair = compare_runs([a, b]).pairs[0]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(page_path.as_uri())
            rows = page.locator("svg.forest g.row")
            assert rows.count() == 1 + len(pair["categories"])
            overall = page.locator('svg.forest g.row[data-name="all"]')
            box = overall.locator("line.ci").bounding_box()
            assert box is not None and box["width"] > 10  # the interval is drawn, not collapsed
            assert overall.locator("text.value").text_content().startswith(f"{pair['difference']:+.2f} ± ")
            flips = page.locator(".flip")
            assert flips.count() == len(pair["flipped"]) > 0
            first = flips.first
            first.scroll_into_view_if_needed()
            assert first.is_visible()
            assert first.locator(".card.run-a .pred b").text_content() == "racket"
            assert first.locator(".card.run-b .pred b").text_content() == "tennis"
            assert first.locator(".card.run-a .cap").text_content() == first.locator(".card.run-b .cap").text_content()
            assert not errors, errors
        finally:
            browser.close()


def test_two_real_runs_compared_end_to_end(okvqa_files, text_index, gemma, tmp_path):
    """Two real `pica eval` runs (--shots 0 and 2) on held-out questions; the paired difference and
    its SE from `pica compare --json` match those computed here from the runs' predictions."""
    from pica.answers import normalize_answer

    runs = []
    for shots in ("0", "2"):
        out = tmp_path / f"shots{shots}"
        result = runner.invoke(app, ["eval", "--dataset", str(okvqa_files["dev"]), "--captions",
                                     str(okvqa_files["captions"]), "--index", str(text_index), "--shots", shots,
                                     "--out", str(out), "--no-progress"])
        assert result.exit_code == 0, result.output
        runs.append(out)
    result = runner.invoke(app, ["compare", *map(str, runs), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["status"] for r in data["runs"]] == ["finished", "finished"]
    assert data["differences"]["shots"] == [0, 2]
    pair = data["pairs"][0]
    labels = {str(q["question_id"]): q["label"] for q in json.loads(okvqa_files["dev"].read_text())}

    def soft(answer: str, label: dict) -> float:
        return max([s for a, s in label.items() if normalize_answer(a) == normalize_answer(answer)], default=0.0)

    predicted = [{str(p["question_id"]): p["answer"] for p in json.loads((out / "predictions.json").read_text())}
                 for out in runs]
    ids = sorted(labels)
    sa = [soft(predicted[0][q], labels[q]) for q in ids]
    sb = [soft(predicted[1][q], labels[q]) for q in ids]
    diff, se = independent(sa, sb)
    assert pair["n"] == len(ids)
    assert pair["difference"] == pytest.approx(diff, abs=0.05)
    assert pair["se"] == pytest.approx(se, abs=0.05)
    assert pair["b_wins"] == sum(y > x for x, y in zip(sa, sb, strict=True))


def test_runs_without_gold_answers_compare_speed_only(tmp_path):
    rows = [row(f"q{i}", None, gold=[], counted=False) for i in range(3)]
    a, b = write_run(tmp_path / "a", rows), write_run(tmp_path / "b", rows)
    comparison = compare_runs([a, b])
    pair = comparison.pairs[0]
    assert (pair["n"], pair["difference"], pair["se"]) == (0, None, None)
    assert pair["speed"] and any("no gold answers" in note for note in comparison.notes)
    assert "B - A: – points" in format_comparison(comparison)
    assert '<svg class="forest"' in render_compare_page(comparison)


def test_a_results_file_stands_for_its_folder(two_runs):
    a, b, _, _ = two_runs
    assert compare_runs([a / "results.jsonl", b]).runs[0].path == a
