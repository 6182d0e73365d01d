"""``python -m asyncwsgi`` runs the CLI."""

from .process.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
