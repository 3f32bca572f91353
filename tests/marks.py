"""The suite's skip conditions, each defined once; every one names a real missing resource
(a browser, a GPU, a binary, an optional package) or a long variant run with FAULTLAB_SLOW=1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
SLOW = bool(os.environ.get("FAULTLAB_SLOW"))
SLOW_REASON = "slow variant: set FAULTLAB_SLOW=1"


def requires(condition: Any, reason: str) -> pytest.MarkDecorator:
    """Runs the test only where ``condition`` holds; otherwise skipped with ``reason``."""
    return pytest.mark.skipif(not condition, reason=reason)


def skip_unless_slow(reason: str = SLOW_REASON) -> None:
    """Inside a test: skip this (parametrized) case unless the slow variants were asked for."""
    if not SLOW:
        pytest.skip(reason)


#: Long variants: more repetitions or a bigger setup than the default suite affords.
slow = requires(SLOW, SLOW_REASON)
#: Browser tests drive Debian's headless Chromium.
needs_chromium = requires(
    Path(CHROMIUM).exists(), f"{CHROMIUM} is absent (apt-get install chromium)"
)
