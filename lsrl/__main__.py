"""Entry point for `python -m lsrl`."""

import sys

from lsrl.cli import main

sys.exit(main())
