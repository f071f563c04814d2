"""`python -m autograder release|grade ...` (see autograder/cli.py)."""

import sys

from autograder.cli import main

sys.exit(main())
