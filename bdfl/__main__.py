"""``python -m bdfl`` is the ``bdfl`` command."""

import sys

from bdfl.cli import main

sys.exit(main())
