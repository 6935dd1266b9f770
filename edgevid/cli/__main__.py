"""`python -m edgevid.cli ...`: the `edgevid` command."""
import sys

from edgevid.cli import main

if __name__ == "__main__":
    sys.exit(main())
