"""What runs inside Ray tasks: the engines, the model/data zoo and the task functions.

This ``__init__`` stays free of torch so the coordinator can look engines up cheaply; which
kinds exist, and where their engines live, is :mod:`faultlab.kinds`'s to say.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultlab.workers.engine import Engine


@functools.cache
def get_engine(kind: str) -> Engine[Any]:
    """The (stateless) engine instance for a campaign kind."""
    from faultlab.kinds import engine_class

    return engine_class(kind)()
