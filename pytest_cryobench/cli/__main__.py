"""``python -m pytest_cryobench.cli``."""

import sys

from pytest_cryobench.cli import main

sys.exit(main())
