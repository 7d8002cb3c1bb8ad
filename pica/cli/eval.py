"""``pica eval`` (resumable batch evaluation) and ``pica report`` (``pica eval report`` is its alias).

Both are plain commands registered on the top-level app (:mod:`pica.cli`); ``eval`` used to be a
group with ``report`` under it, which buried ``report`` under the group's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pica.cli.options import cached_captions, handle_errors, setting_options, settings_from
from pica.errors import InputError


@handle_errors
@setting_options
def evaluate(
    dataset: Annotated[Path | None, typer.Option(
        help="Dataset JSON: LXMERT-style list, A-OKVQA list, or VQA questions (with --annotations).")] = None,
    questions: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA questions JSON.")] = None,
    annotations: Annotated[Path | None, typer.Option(help="Official OK-VQA/VQA annotations JSON.")] = None,
    aokvqa: Annotated[Path | None, typer.Option(help="A-OKVQA JSON (direct answers).")] = None,
    hf_dataset: Annotated[str | None, typer.Option(help="Hugging Face dataset name or folder.")] = None,
    scienceqa: Annotated[Path | None, typer.Option(
        help="ScienceQA problems.json (pid_splits.json beside it; --split train|val|test|minival...).")
    ] = None,
    pid_splits: Annotated[Path | None, typer.Option(
        help="ScienceQA pid_splits.json when it is not beside problems.json.")] = None,
    prompt_format: Annotated[str | None, typer.Option(
        help="ScienceQA prompt format: QCM-ALE (default: answer, lecture, explanation), QCM-A"
        " (answer only), or another of the paper's (CQM-A, QCM-LEA, ...).")] = None,
    split: Annotated[str, typer.Option(help="Split of the HF dataset or of ScienceQA.")] = "validation",
    images: Annotated[Path | None, typer.Option(help="Folder of the dataset's images.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Cached captions file (PICa TSV, JSONL, CSV) keyed by image id; ScienceQA's captions.json.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (created; resumed if it exists).")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N questions.")] = None,
    force_new: Annotated[bool, typer.Option(
        help="Start over in a run folder made with another configuration.")] = False,
    concurrency: Annotated[int | None, typer.Option(
        help="Parallel requests for API backends.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    split_name: Annotated[str | None, typer.Option(
        help="Split in the official A-OKVQA prediction file names (predictions_SPLIT-da.json);"
        " default from the file name (aokvqa_v1p0_val.json -> val).")] = None,
    *,
    options: dict[str, Any],
) -> None:
    """Batch evaluation on a dataset (OK-VQA, A-OKVQA direct answer and multiple choice, ScienceQA;
    official metrics), resumable: `pica eval --dataset D --out RUN ...`; then `pica report RUN`."""
    from pica.datasets import dataset_identity, load_questions
    from pica.datasets.scienceqa import check_captions, splits_file
    from pica.evaluation import evaluate as run_evaluation

    if out is None:
        raise InputError("--out RUN_FOLDER is required (e.g. --out runs/dev)")
    # ScienceQA's captions.json goes to its reader (also for an HF copy with its columns).
    science_captions = captions if captions is not None and (
        scienceqa is not None or (hf_dataset is not None and captions.suffix == ".json")) else None
    sources = dict(dataset=dataset, questions=questions, annotations=annotations, aokvqa=aokvqa,
                   hf_dataset=hf_dataset, scienceqa=scienceqa, scienceqa_captions=science_captions,
                   pid_splits=splits_file(scienceqa, pid_splits))
    qs = load_questions(**sources, split=split, images_dir=images, limit=limit)
    if qs and qs[0].scoring == "scienceqa":
        check_captions(qs, options["captioner"] is not None)
    else:
        options["captioner"] = cached_captions(captions, options["captioner"])
    settings = settings_from({**options, "concurrency": concurrency, "prompt_format": prompt_format})
    identity = dataset_identity(**{k: v for k, v in sources.items() if k != "scienceqa_captions"},
                                split=split, images_dir=images, captions=captions)
    from pica.pipeline import Pipeline

    pipeline = Pipeline(settings)
    if pipeline.zero_shot:
        typer.echo("note: no example index; answering zero-shot", err=True)
    from pica.choice.trust import choice_line

    typer.echo(choice_line(pipeline.choice_info))
    summary = run_evaluation(settings, qs, out, dataset=identity, force_new=force_new,
                             progress=progress, pipeline=pipeline, split=split_name)
    _print_summary(summary, out)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    speed = f"{summary['seconds_per_question']:.2f} s/question"
    if summary["accuracy"] is None:
        typer.echo(f"no annotations: {summary.get('questions', summary['n'])} questions answered,"
                   f" no accuracy (predictions in {out / 'predictions.json'})  {speed}  -> {out}")
        return
    typer.echo(f"accuracy {_mean(summary)}  {speed}  -> {out}")
    if "da" in summary:
        da = summary["da"]
        typer.echo(f"  direct answer (A-OKVQA)  {_mean(da)}; {da['difficult_left_out']} difficult left out")
    if "mc" in summary:
        typer.echo(f"  multiple choice          {_mean(summary['mc'])}")
    for column, row in (summary.get("scienceqa") or {}).items():
        typer.echo(f"  {column:<8} {_mean(row)}")
    for category, row in summary["per_category"].items():
        label = f"{category:>2} {row['name']}" if row.get("name") else category
        typer.echo(f"  {label:<44} {_mean(row)}")


def _mean(stats: dict[str, Any]) -> str:
    """``24.26 ± 1.10 (n=1285)``: an accuracy with one standard error and its n."""
    if stats.get("accuracy") is None:
        return f"- (n={stats['n']})"
    se = "" if stats.get("se") is None else f" ± {stats['se']:.2f}"
    return f"{stats['accuracy']:.2f}{se} (n={stats['n']})"


@handle_errors
def report(run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder of `pica eval`.")]) -> None:
    """(Re)write predictions, summary and report.html of a run folder from its results."""
    from pica.evaluation import write_outputs

    summary = write_outputs(run)
    _print_summary(summary, run)
    typer.echo(f"report: {run / 'report.html'}")


