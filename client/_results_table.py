"""A campaign's trial records as one Arrow table, built from the stored JSON in C++.

``GetResults`` sends each trial's stored ``trial_json`` / ``result_json`` untouched; the
pages are joined into newline-delimited JSON and parsed by ``pyarrow.json.read_json``
(multithreaded), then struct columns are flattened to the ``trial.*`` / ``result.*`` names
:meth:`faultlab.client.Results.to_pandas` has always used. Lists stay JSON strings, as in
the per-record path: those columns (only them) are re-encoded with :func:`json.dumps` from
Python's own parse of the records, so their text is exactly what it was. Anything Arrow cannot
type the same way as pandas would (a field that is a dict in one record and ``null`` or another
type in the next) raises :class:`Unsupported`, and the caller takes the per-record path.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.json as pajson  # type: ignore[import-untyped]

# (key, attempts, trial_json, result_json): one stored trial as the page carries it
RawRecord = tuple[str, int, str, str]


class Unsupported(ValueError):
    """The records' shape has no Arrow typing identical to the per-record path's."""


def ndjson(raw: Sequence[RawRecord]) -> bytes:
    """One ``{"trial": …, "result": …}`` per line, the stored texts spliced in unparsed."""
    return "\n".join(f'{{"trial":{r[2]},"result":{r[3]}}}' for r in raw).encode()


def _flatten(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        for col, f in zip(table.columns, table.schema, strict=True):
            if pa.types.is_struct(f.type) and (col.null_count or f.type.num_fields == 0):
                raise Unsupported(f"{f.name} is a dict in some records only")
        table = table.flatten()
    return table


def _lists_as_json(table: pa.Table, raw: Sequence[RawRecord]) -> pa.Table:
    lists = [i for i, f in enumerate(table.schema)
             if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    if not lists:
        return table
    names = [table.schema.field(i).name for i in lists]
    sections = {name.split(".", 1)[0] for name in names}
    parsed = {s: [json.loads(r[2] if s == "trial" else r[3]) for r in raw] for s in sections}
    for i, name in zip(lists, names, strict=True):
        section, *path = name.split(".")
        texts: list[str | None] = []
        for doc in parsed[section]:
            value: Any = doc
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None and not isinstance(value, list):
                raise Unsupported(f"{name} is a list in some records only")
            texts.append(None if value is None else json.dumps(value))
        table = table.set_column(i, name, pa.array(texts, pa.string()))
    return table


def results_table(raw: Sequence[RawRecord]) -> pa.Table:
    """``key``, ``attempts``, ``trial.*``, ``result.*``; raises :class:`Unsupported`."""
    if not raw:
        return pa.table({"key": pa.array([], pa.string()), "attempts": pa.array([], pa.int64())})
    block = 1 << 24
    options = pajson.ReadOptions(block_size=block, use_threads=True)
    try:
        table = pajson.read_json(io.BytesIO(ndjson(raw)), read_options=options)
    except pa.ArrowInvalid as exc:  # a field changes type between records
        raise Unsupported(str(exc)) from exc
    table = _lists_as_json(_flatten(table), raw)
    table = table.add_column(0, "attempts", pa.array([r[1] for r in raw], pa.int64()))
    return table.add_column(0, "key", pa.array([r[0] for r in raw], pa.string()))
