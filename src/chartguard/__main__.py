import sys

from chartguard.cli import main

sys.exit(main())
