"""chartguard.operator: the running operator; the only package that imports kopf.

- :mod:`.handlers`  kopf watch-event handlers and ``run(config)``
- :mod:`.runtime`   caches, work queue, workers: events -> reconcile/ -> status patches, Events
- :mod:`.caches`    object bodies, referenced Secrets, who-uses-what indexes
- :mod:`.workqueue` per-key queue with delays (intervals, backoff)
- :mod:`.kube`      the Kubernetes API calls kopf does not make (``kubernetes`` client)
- :mod:`.selectors` label selectors as kopf filters (sharding)
- :mod:`.config`    :class:`OperatorConfig`, what ``chartguard run`` was asked
"""

from chartguard.operator.config import OperatorConfig
from chartguard.operator.handlers import build_registry, run
from chartguard.operator.selectors import SelectorError, label_filter

__all__ = ["OperatorConfig", "SelectorError", "build_registry", "label_filter", "run"]
