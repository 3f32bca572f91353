"""Campaign reports: named tables (every rate with its CI), a summary and provenance.

A report travels as JSON over gRPC and becomes DataFrames, CSV, Parquet, JSON, HTML and PNG
plots on the client.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return value


@dataclass
class Report:
    """An engine's aggregate output."""

    kind: str
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    primary: str = ""
    """Name of the table shown by default (``faultlab results``)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """spec hash, code version, seed, engine version, model and dataset digests."""

    def table(self, name: str | None = None) -> pd.DataFrame:
        name = name or self.primary
        if name not in self.tables:
            from faultlab.errors import SpecError

            raise SpecError("table", f"no table {name!r} in this report", sorted(self.tables))
        return self.tables[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": _clean(self.summary),
            "primary": self.primary,
            "provenance": _clean(self.provenance),
            "tables": {
                name: _clean(df.to_dict(orient="records")) for name, df in self.tables.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            kind=data["kind"],
            summary=data.get("summary", {}),
            primary=data.get("primary", ""),
            provenance=data.get("provenance", {}),
            tables={name: pd.DataFrame(rows) for name, rows in data.get("tables", {}).items()},
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    def to_html(self) -> str:
        parts = [f"<h1>faultlab {html.escape(self.kind)} report</h1>", "<h2>Summary</h2>",
                 "<pre>" + html.escape(json.dumps(_clean(self.summary), indent=2)) + "</pre>",
                 "<h2>Provenance</h2>",
                 "<pre>" + html.escape(json.dumps(_clean(self.provenance), indent=2)) + "</pre>"]
        for name, df in self.tables.items():
            parts.append(f"<h2>{html.escape(name)}</h2>")
            parts.append(df.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        return "<html><body>" + "\n".join(parts) + "</body></html>"

    def save_plots(self, directory: str | Path) -> list[Path]:
        """Writes the kind's PNG plots into ``directory``.

        The plotting function is the kind's ``plots`` entry in :mod:`faultlab.kinds`.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        from faultlab.kinds import plots_function

        paths = []
        for name, fig in plots_function(self.kind)(self).items():
            path = out / f"{name}.png"
            fig.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
        return paths
