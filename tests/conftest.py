"""Shared fixtures: one Ray instance per session, a real Redis server, an isolated FAULTLAB_HOME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Zoo models are cached under FAULTLAB_HOME; tests use their own (set before any import).
os.environ.setdefault("FAULTLAB_HOME", str(Path(tempfile.gettempdir()) / "faultlab-test-home"))
