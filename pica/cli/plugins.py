"""``pica plugins``: every registered component by kind, built-in or from which distribution."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pica.cli.options import handle_errors


@handle_errors
def plugins(
    as_json: Annotated[bool, typer.Option(
        "--json/--no-json", help="Print a JSON object {kind: [{name, source, target, summary}]}.")
    ] = False,
) -> None:
    """List captioners, LLM backends, embedders, answer-choice rules and datasets: built-in or
    from an installed plugin (entry points pica.captioners, pica.backends, pica.embedders)."""
    from pica.registry import REGISTRIES

    listing = {kind: registry.entries(load=True) for kind, registry in REGISTRIES.items()}
    if as_json:
        typer.echo(json.dumps({kind: [e.to_dict() for e in entries]
                               for kind, entries in listing.items()}, ensure_ascii=False))
        return
    for kind, entries in listing.items():
        for e in entries:
            note = f"cannot be imported: {e.error}" if e.error else e.summary
            typer.echo(f"{kind:10} {e.name:22} {e.source:24} {note}")
