"""``python -m export.whisper --out DIR``: see :mod:`export.whisper.export`."""

import sys

from .export import main

sys.exit(main())
