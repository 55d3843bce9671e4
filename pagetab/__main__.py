"""``python -m pagetab``: the command line (pagetab.cli)."""

import sys

from pagetab.cli import main

if __name__ == "__main__":
    sys.exit(main())
