"""The ``pica`` command line, runnable from a checkout as ``python cli.py ...``.

The Typer app lives in :mod:`pica.cli` (the installed ``pica`` command and ``python -m pica`` use it
too); this file is only the entry point the repository layout asks for and is not installed.
"""

import sys

from pica.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    sys.exit(main())
