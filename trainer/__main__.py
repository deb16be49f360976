"""``python -m trainer ...`` = ``m3ret-train ...``."""

import sys

from trainer.cli import main

sys.exit(main())
