"""What runs inside Ray tasks: the four engines and the model/data zoo.

This ``__init__`` stays free of torch so the coordinator can look engines up cheaply.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faultlab.workers.engine import Engine

#: Campaign kind -> engine class (import path).
ENGINES: dict[str, str] = {
    "faults": "faultlab.workers.faults.engine:FaultEngine",
    "sparsity": "faultlab.workers.sparsity.engine:SparsityEngine",
    "watermark": "faultlab.workers.watermark.engine:WatermarkEngine",
    "sampling": "faultlab.workers.sampling.engine:SamplingEngine",
}


@functools.cache
def get_engine(kind: str) -> Engine:
    """The (stateless) engine instance for a campaign kind."""
    from faultlab.errors import SpecError

    if kind not in ENGINES:
        raise SpecError("kind", f"unknown campaign kind {kind!r}", sorted(ENGINES))
    module, _, attr = ENGINES[kind].partition(":")
    engine: Engine = getattr(importlib.import_module(module), attr)()
    return engine
