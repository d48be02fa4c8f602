"""``python -m xpnn.cli``: the same as the ``xpnn`` command."""

import sys

from . import main

sys.exit(main())
