"""``python -m bgpflat``: the same command line as the ``bgpflat`` script (for a checkout or a
virtualenv without the script on PATH)."""

import sys

from bgpflat.cli import main

sys.exit(main())
