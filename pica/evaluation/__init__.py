"""Batch evaluation: resumable runs into a run folder, scoring, summary, the HTML report.

- :mod:`~pica.evaluation.runner`: :func:`evaluate` — the run folder, its configuration, the loop.
- :mod:`~pica.evaluation.results`: ``results.jsonl``, one line per finished question.
- :mod:`~pica.evaluation.summary`: accuracy overall, per category and per question type.
- :mod:`~pica.evaluation.outputs`: :func:`write_outputs` — predictions, parquet, summary, report.
- :mod:`~pica.evaluation.runlock`: one writer per run folder.
- :mod:`~pica.evaluation.report` / :mod:`~pica.evaluation.cards`: the self-contained report.
"""

from pica.evaluation.outputs import write_outputs
from pica.evaluation.runner import evaluate

__all__ = ["evaluate", "write_outputs"]
