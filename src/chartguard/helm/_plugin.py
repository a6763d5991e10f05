"""``python -m chartguard.helm._plugin PLAN``: the command of chartguard's helm post-renderer
plugin (:mod:`chartguard.helm.postrender`). A module of its own, which the package never
imports, so running it does not import it twice."""

import sys

from chartguard.helm.postrender import main

sys.exit(main())
