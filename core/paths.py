"""Where faultlab keeps its files on this machine: the one reader of ``$FAULTLAB_HOME``.

``$FAULTLAB_HOME`` (default ``~/.cache/faultlab``) holds::

    faultlab.db          the embedded coordinator's SQLite store (``Client()`` without an address)
    zoo/                 trained zoo models, by content hash
    watermark/           watermarked models, sensitivity probes and ``embed-log.jsonl``
    sampling/            pseudo-oracle scores
    data/<name>/         datasets read from disk (Planetoid, OGB), never downloaded

The variable is read on every call, not once at import: tests and benchmarks point it at a
fresh folder per run. Torch-free, so the SDK and the coordinator can use it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path("~/.cache/faultlab")


def faultlab_home() -> Path:
    """``$FAULTLAB_HOME`` (default ``~/.cache/faultlab``), created if missing."""
    home = Path(os.environ.get("FAULTLAB_HOME") or DEFAULT_HOME).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def embedded_store_path() -> Path:
    """The SQLite file of the embedded coordinator: ``$FAULTLAB_HOME/faultlab.db``."""
    return faultlab_home() / "faultlab.db"


def data_dir(name: str) -> Path:
    """The default root of an on-disk dataset family: ``$FAULTLAB_HOME/data/<name>``."""
    return faultlab_home() / "data" / name
