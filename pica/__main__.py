"""``python -m pica`` runs the CLI."""

from pica.cli import main

if __name__ == "__main__":
    main()
