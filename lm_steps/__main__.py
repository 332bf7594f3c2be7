"""``python -m lm_steps``: the same command line as ``lm-steps`` (see :mod:`lm_steps.cli`)."""
import sys

from .cli import main

sys.exit(main())
