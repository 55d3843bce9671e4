"""Print the 2018 findings: simulated ratio next to the published one
(the same table as ``pagetab reproduce``)."""

import sys

from pagetab.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce"]))
