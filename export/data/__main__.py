"""Entry point: ``python -m export.data build --out DIR --hours H --seed S --split SPLIT``."""

import sys

from .cli import main

sys.exit(main())
