"""One error family for pica.

Every message says what went wrong and how to fix it. The CLI prints the message on one line and
exits with ``exit_code``: 2 for bad input (the user can fix the command), 1 for runtime failures,
74 (``EX_IOERR`` of sysexits.h) when a file cannot be written (full disk, quota, read-only or failing
storage: nothing the user typed is wrong, and the same command resumes once the storage is fixed),
130 for SIGINT and 143 for SIGTERM.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PicaError(Exception):
    """Base class of all errors pica raises on purpose."""

    exit_code = 1

    def __str__(self) -> str:
        # One line, always: the CLI prints this verbatim.
        return " ".join(str(self.args[0] if self.args else "").split())


class InputError(PicaError):
    """The user gave something unusable: a missing file, a bad name, an empty question."""

    exit_code = 2


class ContextOverflowError(InputError):
    """One question's prompt cannot fit the LLM context (a batch records it and goes on)."""


class ModelLoadError(InputError):
    """A model (captioner, embedder, LLM) named by the user cannot be loaded."""


class CaptionError(ModelLoadError):
    """No caption can be had: the captioner cannot be loaded, or a question has neither an image
    nor a caption. ``problem`` says what went wrong; ``hint`` what to pass, in the Python API's
    terms; the CLI and the server replace the hint by their own options (:meth:`with_hint`)."""

    def __init__(self, problem: str, hint: str = "give a caption (caption=TEXT), a captions file"
                 " (captioner=FILE.jsonl) or a local model folder (captioner=FOLDER)") -> None:
        super().__init__(f"{problem}; {hint}")
        self.problem = problem

    def with_hint(self, hint: str) -> str:
        """The message with ``hint`` in place of the Python API's."""
        return " ".join(f"{self.problem}; {hint}".split())


class IndexFormatError(InputError):
    """An index folder is missing, corrupt, or made for another embedder."""


class RunConfigError(InputError):
    """An evaluation run folder was made with another configuration."""


class RunInUseError(InputError):
    """An evaluation run folder is locked by another running process (one writer per folder)."""


class StorageError(PicaError):
    """A file could not be written (full disk, quota, read-only or failing storage); exit 74.

    The message names the path and the cause; whatever was written is rolled back to the last
    complete state, so the same command resumes once space is back.
    """

    exit_code = 74


class BackendError(PicaError):
    """An LLM backend failed at run time (server down, retries exhausted)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" did you mean 'x'?"`` for the closest of ``choices`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> InputError:
    """Build the error for an unknown registry name: names the closest match and all choices."""
    choices = sorted(choices)
    return InputError(
        f"unknown {kind} '{name}';{did_you_mean(name, choices)} available: {', '.join(choices)}"
    )
