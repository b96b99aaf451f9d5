"""`python -m chalicelib.cli`: the operator's command line (see chalicelib/entrypoints/cli.py)."""

import sys

from .entrypoints.cli import main

if __name__ == "__main__":
    sys.exit(main())
