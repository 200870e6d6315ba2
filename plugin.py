#!/usr/bin/env python3
"""`python plugin.py [OPTIONS]`: the same as `rewriter render`, for plugin runners that
call a script from the repository rather than an installed command."""

import sys
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rewriter.cli import main

if __name__ == "__main__":
    sys.exit(main())
