"""``python -m mmml_core`` is ``mmml-bench`` (what ``torchrun ... -m mmml_core`` starts)."""

import sys

from mmml_core.cli import main

sys.exit(main())
