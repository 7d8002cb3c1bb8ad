"""Help text as click and argparse users read it: upper-case metavars without braces or type
placeholders (``pica answer IMAGE QUESTION``, ``--shots N``, ``--llm MODEL``), the values of every
enumerated option listed (``--choose [auto|learned|...]``, declared with the option).

Typer prints ``{IMAGE}`` for a required argument, ``IMAGE <path>`` in the argument list and
``--shots <int>`` for an option without a metavar; :func:`conventional` walks the click commands
Typer built and gives each parameter its metavar, so the option declarations stay as they are.
"""

from __future__ import annotations

import click
from typer.core import TyperArgument, TyperOption

# Metavars by option name (without the leading dashes); others get one from their type.
METAVARS = {
    "captioner": "MODEL", "llm": "MODEL", "index": "INDEX", "embedder": "EMBEDDER",
    "api-base": "URL", "captioner-api-base": "URL", "api-key-env": "VAR", "mmproj": "FILE",
    "weights": "KIND=W,...", "config": "FILE", "dataset": "FILE", "questions": "FILE",
    "annotations": "FILE", "aokvqa": "FILE", "hf-dataset": "NAME", "split": "SPLIT",
    "split-name": "SPLIT", "images": "DIR", "captions": "FILE", "examples": "FILE",
    "candidates-file": "FILE", "examples-file": "FILE", "shard": "K/N", "root": "DIR",
    "examples-dir": "DIR", "host": "HOST", "approximate": "[hnsw|ivf]", "timeout": "SECONDS",
    "max-upload-mb": "MB", "heldout": "SHARE", "out": "RUN", "caption-max-side": "PIXELS",
    "api-timeout": "SECONDS", "api-wait": "SECONDS", "model-name": "NAME", "pid-splits": "FILE",
    "scienceqa": "FILE", "prompt-format": "FORMAT",
}


class ConventionalArgument(TyperArgument):
    """An argument shown as ``IMAGE`` (``[NAME]`` when optional) with no type placeholder."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        """No ``<path>`` after the name in the argument list."""
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def conventional(command: click.Command) -> None:
    """Give every parameter of ``command`` and its subcommands a conventional metavar."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = ConventionalArgument
            param.metavar = param.metavar or (param.name or "").upper()
        elif (isinstance(param, TyperOption | click.Option) and not param.is_flag and not param.count
              and param.metavar is None):
            name = max(param.opts, key=len).lstrip("-")
            param.metavar = METAVARS.get(name) or _by_type(param)
    for sub in (getattr(command, "commands", None) or {}).values():
        conventional(sub)


def _by_type(param: click.Parameter) -> str:
    """``N`` for integers, ``NUMBER`` for floats, ``PATH`` for paths, the values of a choice,
    else ``TEXT``."""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None and desc.is_choice and desc.choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices) + "]"
    if desc is not None and desc.is_path:
        return "PATH"
    kind = param.bare_type() if hasattr(param, "bare_type") else ""
    return {"int": "N", "float": "NUMBER"}.get(kind, "TEXT")
