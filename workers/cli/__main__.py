"""`python -m workers.cli`: the `rapport` command."""

import sys

from workers.cli.main import main

sys.exit(main())
