"""``python -m chartguard.testing.apiserver``: same as ``chartguard dev-apiserver``."""

import sys

from chartguard.testing.apiserver.server import main

sys.exit(main())
