"""``python -m asyncwsgi`` runs the CLI. [main]"""

from .process.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
