"""Shared helpers of the bench scripts: machine facts, peak memory, BENCHMARKS.md sections, and
the data a script reads: ../shared/okvqa, or with ``--smoke`` a small generated fixture.

Every script has a ``--smoke`` mode (run by tests/test_bench.py): seconds on tiny inputs, its
outputs under a temporary folder (never BENCHMARKS.md, never bench/out), no ../shared needed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SHARED = ROOT.parent / "shared" / "okvqa"
TESTS = ROOT / "tests"
OUT = ROOT / "bench" / "out"
SMOKE_HELP = "run in seconds on a small generated fixture, outputs in a temporary folder (tests)"


@dataclass(frozen=True)
class Data:
    """The OK-VQA files a script reads and the folders it writes.

    Attributes:
        okvqa: Folder of ``okvqa_val2014_dev.json``, ``okvqa_val2014_pool.json`` and
            ``VinVL_base_val2014.tsv`` (../shared/okvqa, or the smoke fixture under those names).
        index: The pool index (built from ``pool`` when missing).
        out: Run folders and other outputs (bench/out).
        smoke_dir: The temporary folder of a ``--smoke`` run, else ``None``.
    """

    okvqa: Path
    index: Path
    out: Path
    smoke_dir: Path | None = None

    @property
    def dev(self) -> Path:
        return self.okvqa / "okvqa_val2014_dev.json"

    @property
    def pool(self) -> Path:
        return self.okvqa / "okvqa_val2014_pool.json"

    @property
    def captions(self) -> Path:
        return self.okvqa / "VinVL_base_val2014.tsv"


REAL = Data(SHARED, ROOT / "indexes" / "okvqa-pool", OUT)


@contextlib.contextmanager
def smoke_folder(name: str) -> Iterator[Path]:
    """A temporary folder for a ``--smoke`` run, removed afterwards. pica's cache (the starter
    index) and index root point into it unless they are set, the hub is offline, and the processes
    it starts use one BLAS/OpenMP thread (tiny inputs: more threads only spin on a busy machine)."""
    with tempfile.TemporaryDirectory(prefix=f"pica-bench-{name}-") as tmp:
        folder = Path(tmp)
        os.environ.setdefault("PICA_CACHE", str(folder / "cache"))
        os.environ.setdefault("PICA_INDEX_DIR", str(folder / "indexes"))
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS"):
            os.environ.setdefault(key, "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        print(f"smoke run of bench/{name}.py in {folder}", flush=True)
        yield folder


def smoke_data(folder: Path, pool_size: int = 30, dev_size: int = 10) -> Data:
    """The tests' OK-VQA fixture (tests/okvqa_fixture.py) written into ``folder/okvqa`` under the
    ../shared file names, with the index and outputs inside ``folder``."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from okvqa_fixture import write_okvqa_fixture

    okvqa = folder / "okvqa"
    okvqa.mkdir(parents=True, exist_ok=True)
    data = Data(okvqa, folder / "indexes" / "okvqa-pool", folder / "out", smoke_dir=folder)
    files = write_okvqa_fixture(okvqa, pool_size=pool_size, dev_size=dev_size)
    for key, target in (("dev", data.dev), ("pool", data.pool), ("captions", data.captions)):
        files[key].rename(target)
    return data


@contextlib.contextmanager
def bench_data(name: str, smoke: bool) -> Iterator[Data]:
    """:data:`REAL`, or for a smoke run the fixture of :func:`smoke_data` in a temporary folder."""
    if not smoke:
        yield REAL
        return
    with smoke_folder(name) as folder:
        yield smoke_data(folder)


def publish(name: str, body: str, smoke_dir: Path | None = None) -> Path:
    """Print a section and write it into BENCHMARKS.md, or for a smoke run (``smoke_dir``) into a
    BENCHMARKS.md of the smoke folder: the real one is never touched by a smoke run."""
    target = BENCHMARKS if smoke_dir is None else smoke_dir / "BENCHMARKS.md"
    update_section(name, body, target)
    print(body, flush=True)
    return target




def machine() -> str:
    """One line describing where the figures were measured."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()},"
            f" {time.strftime('%Y-%m-%d')}")


def command_line() -> str:
    """The exact command that is running, for the record."""
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def update_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the ``<!-- bench:NAME -->`` section of BENCHMARKS.md (or ``path``) with ``body``."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
