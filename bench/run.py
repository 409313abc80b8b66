"""Entry point for ``make bench``: ``.venv/bin/python bench/run.py [--quick] [--only 1,3] ...``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.main import main

if __name__ == "__main__":
    sys.exit(main())
