"""``pica caption``: caption a folder of images, or the images (or questions) of a dataset, into a
captions file that ``--captions`` reads back.

The file is JSONL, one ``{"image_id", "caption"}`` object per line, plus ``"question_id"`` for
question-aware captions (one per question). Each line is written whole, flushed and fsync'd as
soon as its caption arrives, so a job killed at any moment keeps everything finished; a re-run
skips every key already in the file (a torn last line is dropped and redone). Captioners that
take parallel requests (``openai:MODEL``) get ``concurrency`` requests in flight; the others get
batches of ``batch_size`` while loader threads decode the next ones.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from pica.caption.base import Captioner
from pica.errors import InputError
from pica.types import Question, normalize_image_id
from pica.util.loading import prefetch_map
from pica.util.progress import progress_bar


@dataclass(frozen=True)
class CaptionTask:
    """One caption to make: ``key`` is the image id, or the question id when question-aware."""

    key: str
    question: Question


def folder_tasks(images_dir: str | Path) -> list[CaptionTask]:
    """One task per image file in ``images_dir`` (image id = normalized file stem), sorted by id.

    Raises:
        InputError: the folder is missing or holds no images.
    """
    from pica.datasets.images import scan_images

    files = scan_images(images_dir)
    if not files:
        raise InputError(f"no image files in {images_dir}; check --images")
    return [CaptionTask(i, Question(id=i, question="", image_id=i, image_path=files[i]))
            for i in sorted(files)]


def dataset_tasks(questions: Sequence[Question], question_aware: bool) -> list[CaptionTask]:
    """Tasks for a dataset's questions (images attached): one per distinct image, or one per
    question when ``question_aware``; sorted by key."""
    tasks: dict[str, CaptionTask] = {}
    for q in questions:
        key = str(q.id) if question_aware else normalize_image_id(q.image_id or q.id)
        tasks.setdefault(key, CaptionTask(key, q))
    return [tasks[k] for k in sorted(tasks)]


def finished_keys(out: Path, question_aware: bool) -> set[str]:
    """Keys already captioned in ``out``; a torn last line (no newline) is cut off the file.

    Raises:
        InputError: a line that is not a caption object, or a file of the other mode.
    """
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        os.truncate(out, keep)
        data = data[:keep]
        print(f"note: {out}: dropped a torn last line (an interrupted write); it is redone",
              file=sys.stderr)
    done: set[str] = set()
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            caption, image_id = row["caption"], row["image_id"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{out} line {number} is not a caption object {{image_id, caption}};"
                             " is it a captions file written by pica caption?") from None
        has_question = row.get("question_id") not in (None, "")
        if has_question != question_aware:
            kind = "question-aware" if has_question else "plain"
            raise InputError(f"{out} holds {kind} captions; write"
                             f" {'plain' if has_question else 'question-aware'} ones to another file")
        if caption:
            done.add(str(row["question_id"]) if question_aware else normalize_image_id(image_id))
    return done


def run_caption_job(tasks: Sequence[CaptionTask], captioner: Captioner, out: str | Path, *,
                    question_aware: bool = False, concurrency: int = 1, batch_size: int = 8,
                    workers: int = 2, progress: bool = True) -> tuple[int, int]:
    """Caption every task not yet in ``out``, appending one fsync'd JSONL line per caption.

    Args:
        tasks: What to caption (:func:`folder_tasks`, :func:`dataset_tasks`, a shard of them).
        captioner: Any captioner; a vision-language one (``caption_one``) gets ``concurrency``
            requests in flight (at most its own ``parallel``), the others batches of ``batch_size``.
        out: The captions file (created, or resumed).
        question_aware: Write ``question_id`` on each line (tasks keyed by question id).
        concurrency: Requests in flight for parallel captioners.
        batch_size: Images per ``caption`` call for the others.
        workers: Loader threads decoding images ahead of a batching captioner.
        progress: Show a progress bar with ETA on stderr.

    Returns:
        ``(already_done, written)``.

    Raises:
        InputError: a bad image or captions file. BackendError: the captioner failed; every caption
            finished before the failure is in the file.
    """
    out = Path(out)
    if concurrency < 1 or batch_size < 1 or workers < 0:
        raise InputError("--concurrency and --batch-size must be at least 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = finished_keys(out, question_aware)
    todo = [t for t in tasks if t.key not in done]
    with open(out, "a", encoding="utf-8") as file, progress_bar(
            total=len(tasks), desc="captioning", unit="img", enabled=progress,
            initial=len(tasks) - len(todo)) as bar:

        def write(results: Sequence[tuple[CaptionTask, str]]) -> None:
            """Append finished captions and make them durable together (one fsync)."""
            for task, caption in results:
                q = task.question
                row = {"image_id": normalize_image_id(q.image_id or q.id), "caption": caption}
                if question_aware:
                    row = {"question_id": str(q.id), **row, "question": q.question}
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
            bar.update(len(results))

        if hasattr(captioner, "caption_one"):  # one image per request: each written as it arrives
            _in_flight(todo, captioner, min(concurrency, getattr(captioner, "parallel", 1)), write)
        else:
            _batched(todo, captioner, batch_size, workers, write)
    return len(tasks) - len(todo), len(todo)


def _in_flight(todo: Sequence[CaptionTask], captioner, concurrency: int, write) -> None:
    """Keep ``concurrency`` single-image requests going; write the captions as they arrive (those
    finishing together share one fsync). On a failure nothing new starts, the requests in flight
    finish and are written, then it raises."""
    one = captioner.caption_one
    pending: dict[Future, CaptionTask] = {}
    queue = iter(todo)
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pica-caption-job") as pool:

        def refill() -> None:
            while len(pending) < concurrency and (task := next(queue, None)) is not None:
                pending[pool.submit(one, task.question)] = task

        while True:
            if error is None:
                refill()
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            results = []
            for future in finished:
                task = pending.pop(future)
                try:
                    results.append((task, future.result()))
                except BaseException as e:  # noqa: BLE001 - re-raised once the others are in
                    error = error or e
            if error is None:
                refill()  # before writing, so the fsync never holds a slot empty
            if results:
                write(results)
    if error is not None:
        raise error


def _batched(todo: Sequence[CaptionTask], captioner: Captioner, batch_size: int, workers: int,
             write) -> None:
    """Batches through ``captioner.caption``, loader threads decoding the next batches ahead."""
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]

    def load(task: CaptionTask):
        return captioner.preprocess(task.question.load_image()) if captioner.reads_pixels else None

    for batch, images in prefetch_map(load, batches, workers):
        texts = captioner.caption([t.question for t in batch], images=list(images))
        write(list(zip(batch, texts, strict=True)))
