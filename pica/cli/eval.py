"""``pica eval`` (resumable batch evaluation) and ``pica report`` (``pica eval report`` is its alias).

Both are plain commands registered on the top-level app (:mod:`pica.cli`); ``eval`` used to be a
group with ``report`` under it, which buried ``report`` under the group's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pica.cli.options import (
    AsJson,
    cached_captions,
    handle_errors,
    json_text,
    note,
    output_options,
    quiet,
    setting_options,
    settings_from,
)
from pica.config import MIN_SE_N
from pica.errors import InputError


@handle_errors
@output_options
@setting_options
def evaluate(
    run: Annotated[Path | None, typer.Argument(
        metavar="RUN", show_default=False,
        help="Run folder to write (created; resumed if it exists), e.g. runs/dev.")] = None,
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
    out: Annotated[Path | None, typer.Option(
        hidden=True, help="Deprecated spelling of the RUN argument.")] = None,
    limit: Annotated[int | None, typer.Option(
        metavar="N", help="Evaluate only the first N questions (recorded: N of the dataset's).")] = None,
    force_new: Annotated[bool, typer.Option(
        help="Start over in a run folder made with another configuration.")] = False,
    concurrency: Annotated[int | None, typer.Option(
        help="Parallel requests for API backends.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    split_name: Annotated[str | None, typer.Option(
        help="Split in the official A-OKVQA prediction file names (predictions_SPLIT-da.json);"
        " default from the file name (aokvqa_v1p0_val.json -> val).")] = None,
    as_json: AsJson = False,
    *,
    options: dict[str, Any],
) -> None:
    """Batch evaluation on a dataset (OK-VQA, A-OKVQA direct answer and multiple choice, ScienceQA;
    official metrics), resumable: `pica eval RUN --dataset D --index INDEX ...`; then `pica report RUN`."""
    from pica.datasets import dataset_identity, load_questions
    from pica.datasets.scienceqa import check_captions, splits_file
    from pica.evaluation import evaluate as run_evaluation

    out = _run_folder(run, out)
    # A bad setting fails before the dataset is read; the settings are built again below, once the
    # dataset says how its captions are read.
    settings_from({**options, "concurrency": concurrency, "prompt_format": prompt_format}, say=False)
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
    from pica.choice.trust import choice_line
    from pica.evaluation.runner import examples_info
    from pica.pipeline import Pipeline

    pipeline = Pipeline(settings)
    examples = examples_info(pipeline)
    header = typer.echo if not as_json else _stderr  # stdout holds the JSON alone
    if examples["starter"]:
        header(f"warning: {examples['line']}")  # never left out, not even with --quiet
    elif not quiet():
        header(examples["line"])
    if not quiet():
        header(choice_line(pipeline.choice_info))
    summary = run_evaluation(settings, qs, out, dataset=identity, force_new=force_new,
                             progress=progress, pipeline=pipeline, split=split_name,
                             questions_total=qs.total, limit=limit)
    _print_summary(summary, out, as_json)
    if run is None:  # after the run, so that an error stays one line
        note(f"--out is deprecated: pass the run folder first, `pica eval {out} --dataset ...`")


def _run_folder(run: Path | None, out: Path | None) -> Path:
    """The run folder: the RUN argument, or the deprecated ``--out RUN``.

    Raises:
        InputError: neither, or two different folders.
    """
    if out is not None:
        if run is not None and run != out:
            raise InputError(f"two run folders: {run} and --out {out}; pass only RUN")
        return out
    if run is None:
        raise InputError("the run folder RUN is required: pica eval RUN --dataset FILE ... (e.g. runs/dev)")
    return run


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


def _print_summary(summary: dict[str, Any], out: Path, as_json: bool = False) -> None:
    """The closing lines of ``eval`` and ``report``: accuracy ± 1 SE (n), the questions out of the
    dataset's, the example pool, speed; ``as_json``: summary.json's object instead."""
    if as_json:
        typer.echo(json_text({**summary, "run": str(out)}))
        return
    speed = f"{summary['seconds_per_question']:.2f} s/question"
    what = f"{_of_total(summary)}  {_pool(summary)}"
    if summary["accuracy"] is None:
        typer.echo(f"no annotations: {summary.get('questions', summary['n'])} questions answered,"
                   f" no accuracy (predictions in {out / 'predictions.json'})  {what}  {speed}  -> {out}")
        return
    errors = f"  ({summary['errors']} error rows)" if summary.get("errors") else ""
    typer.echo(f"accuracy {_mean(summary)}  {what}  {speed}{errors}  -> {out}")
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


def _of_total(summary: dict[str, Any]) -> str:
    """``10 of 1,285 questions of dev.json (--limit 10)``."""
    answered, total = summary.get("questions", summary["n"]), summary.get("questions_total")
    text = f"{answered:,} of {total:,} questions" if isinstance(total, int) else f"{answered:,} questions"
    if summary.get("dataset"):
        text += f" of {summary['dataset']}"
    return text + (f" (--limit {summary['limit']})" if summary.get("limit") else "")


def _pool(summary: dict[str, Any]) -> str:
    """``examples okvqa-pool``, or the starter set named as such."""
    examples = summary.get("examples") or {}
    if examples.get("starter"):
        return f"examples: STARTER ({examples.get('count') or 96} hand-written; not comparable)"
    return f"examples {examples.get('index') or 'none (zero-shot)'}"


def _mean(stats: dict[str, Any]) -> str:
    """``24.26 ± 1.10 (n=1285)``: an accuracy with one standard error and its n."""
    if stats.get("accuracy") is None:
        return f"- (n={stats['n']})"
    se = "" if stats.get("se") is None else f" ± {stats['se']:.2f}" if stats["n"] >= MIN_SE_N else " ± –"
    return f"{stats['accuracy']:.2f}{se} (n={stats['n']})"


@handle_errors
@output_options
def report(run: Annotated[Path, typer.Argument(metavar="RUN", show_default=False,
                                               help="Run folder of `pica eval`.")],
           as_json: AsJson = False) -> None:
    """(Re)write predictions, summary and report.html of a run folder from its results."""
    from pica.evaluation import write_outputs

    summary = write_outputs(run)
    _print_summary(summary, run, as_json)
    if not as_json:
        typer.echo(f"report: {run / 'report.html'}")


