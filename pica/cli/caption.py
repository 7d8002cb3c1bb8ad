"""``pica caption``: a resumable job writing a captions file (JSONL) that ``--captions`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pica.cli.options import (
    ApiBase,
    ApiKeyEnv,
    Captioner,
    CaptionerApiBase,
    CaptionMaxSide,
    Config,
    Device,
    Dtype,
    Mmproj,
    QuestionAware,
    handle_errors,
)
from pica.errors import InputError

Shard = Annotated[str | None, typer.Option(
    help="Do only part K of N (0-based: 0/4 ... 3/4), a contiguous block of the sorted ids"
    " (Slurm: --shard $SLURM_ARRAY_TASK_ID/N).")]


@handle_errors
def caption(
    out: Annotated[Path, typer.Argument(help="Captions file to write or resume (JSONL).")],
    images: Annotated[Path | None, typer.Option(
        help="Folder of images; alone, every image in it is captioned (image id = file stem).")] = None,
    dataset: Annotated[Path | None, typer.Option(
        help="Dataset JSON (LXMERT, A-OKVQA or VQA format): caption the images it uses.")] = None,
    captioner: Captioner = None,
    captioner_api_base: CaptionerApiBase = None,
    api_base: ApiBase = None,
    api_key_env: ApiKeyEnv = None,
    mmproj: Mmproj = None,
    caption_max_side: CaptionMaxSide = None,
    question_aware: QuestionAware = None,
    concurrency: Annotated[int, typer.Option(
        help="Requests in flight with an API captioner.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Images per batch with an HF captioner.")] = 8,
    shard: Shard = None,
    limit: Annotated[int | None, typer.Option(help="Caption only the first N (after sharding).")] = None,
    skip_missing: Annotated[bool, typer.Option(
        help="Leave out dataset questions whose image file is missing.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    device: Device = None,
    dtype: Dtype = None,
    config: Config = None,
) -> None:
    """Caption images into a JSONL captions file (resumable; --captions reads it back)."""
    from pica.caption import captioner_from_settings
    from pica.caption.job import dataset_tasks, folder_tasks, run_caption_job
    from pica.config import make_settings
    from pica.util.shards import parse_shard, take_shard

    if images is None:
        raise InputError("pass --images DIR (with --dataset FILE to caption only its images)")
    part = parse_shard(shard)
    settings = make_settings({
        "captioner": captioner, "captioner_api_base": captioner_api_base, "api_base": api_base,
        "api_key_env": api_key_env, "mmproj": mmproj, "caption_max_side": caption_max_side,
        "question_aware": question_aware, "device": device, "dtype": dtype,
        "concurrency": concurrency}, config)
    if dataset is not None:
        from pica.datasets import load_questions

        tasks = dataset_tasks(load_questions(dataset=dataset, images_dir=images,
                                             skip_missing=skip_missing), settings.question_aware)
    elif settings.question_aware:
        raise InputError("--question-aware needs the questions: pass --dataset FILE with --images DIR")
    else:
        tasks = folder_tasks(images)
    tasks = take_shard(tasks, part)[:limit]
    cap = captioner_from_settings(settings, concurrency=concurrency)
    before, written = run_caption_job(tasks, cap, out, question_aware=settings.question_aware,
                                      concurrency=concurrency, batch_size=batch_size,
                                      progress=progress)
    typer.echo(f"captions  {out}: {written} written, {before} already there"
               f" ({before + written} of this {'shard' if part else 'job'})")
