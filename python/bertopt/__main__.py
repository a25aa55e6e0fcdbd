"""python -m bertopt optimize|compare|perf [flags]: the bertopt CLI, run in this process."""

import sys

from . import main

sys.exit(main())
