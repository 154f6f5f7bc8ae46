"""``python -m fleetlab``: the ``fleetlab`` command."""
import sys

from .cli import main

sys.exit(main())
