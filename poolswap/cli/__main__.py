"""``python -m poolswap.cli COMMAND ...`` (as torchrun runs it)."""

import sys

from . import main

sys.exit(main())
