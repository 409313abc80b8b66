import sys

from dtr.cli import main

sys.exit(main())
