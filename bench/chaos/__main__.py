"""`python -m bench.chaos`: the fault-injection run (see run.py)."""

import sys

from bench.chaos.run import main

sys.exit(main())
