"""``python -m chartguard_testing.apiserver``: the emulator in the foreground."""

import sys

from chartguard_testing.apiserver.server import main

sys.exit(main())
