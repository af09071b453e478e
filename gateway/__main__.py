"""``python -m gateway`` is the ``adapter-gateway`` command."""

import sys

from gateway.cli import main

sys.exit(main())
