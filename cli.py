#!/usr/bin/env python3
"""Run poolswap's command line from a checkout: ``python cli.py COMMAND ...``."""

import sys

from poolswap.cli import main

if __name__ == "__main__":
    sys.exit(main())
