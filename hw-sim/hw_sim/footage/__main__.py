"""``python -m hw_sim.footage``: score the agent on the real clips (see run.py)."""

import sys

from hw_sim.footage.run import main

sys.exit(main())
