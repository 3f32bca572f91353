"""A campaign's trial records as one Arrow table, built from the stored JSON in C++.

``GetResults`` sends each trial's stored ``trial_json`` / ``result_json`` untouched; the texts
are joined into newline-delimited JSON by Arrow and parsed by ``pyarrow.json.read_json``
(multithreaded), then struct columns are flattened to the ``trial.*`` / ``result.*`` names
:meth:`faultlab.client.Results.to_pandas` has always used, in the order pandas gives the
per-record path's columns (each where the first record having it puts it). Strings Arrow would
read as dates or timestamps are read again as strings (pandas keeps them as text).

Lists stay JSON text, exactly ``json.dumps(value)`` as in the per-record path. That text is
cut out of the stored JSON by Arrow's string kernels wherever it is provably the same: the
record's strings and separators are all in ``json.dumps``'s own form, the list's key occurs
once in it, and the list holds only canonical strings, integers, booleans and ``null`` (a
``json.dumps`` output is a fixed point of ``json.dumps(json.loads(·))``). Any other row (a
float in the list, a key that occurs twice, deeper nesting) is re-encoded by
:func:`json.dumps` from Python's own parse, as before.

Anything Arrow cannot type the same way as pandas would (a field that is a dict in one record
and ``null`` or another type in the next) raises :class:`Unsupported`, and the caller takes the
per-record path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.json as pajson  # type: ignore[import-untyped]

# (key, attempts, trial_json, result_json): one stored trial as the page carries it
RawRecord = tuple[str, int, str, str]

_TEXT = pa.large_string()
_BLOCK = 1 << 24

# ``json.dumps`` spellings (ensure_ascii): a string's characters and escapes, an integer
_CSTR = (r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\bfnrt]'
         r'|\\u00(?:0[0-7]|0b|0e|0f|1[0-9a-f]|7f|[89a-f][0-9a-f])'
         r'|\\u(?:0[1-9a-f]|[1-9a-f][0-9a-f])[0-9a-f]{2})*"')
_CSCALAR = r'(?:0|-?[1-9][0-9]*|true|false|null)'
_TOKENS = rf'^(?:{_CSTR}|[-+.0-9A-Za-z]+|[\[\]{{}}]|, |: )*$'
"""A record whose strings and separators are all ``json.dumps``'s (numbers unchecked)."""


def _value(depth: int) -> str:
    """A canonical JSON value nested at most ``depth`` deep. Its sequences are loose (``(value
    | ", ")*``): the text is valid JSON already, the pattern only has to find where it ends."""
    if depth == 0:
        return rf'(?:{_CSTR}|{_CSCALAR}|\[\]|\{{\}})'
    inner = _value(depth - 1)
    return rf'(?:{_CSTR}|{_CSCALAR}|\[(?:{inner}|, )*\]|\{{(?:{inner}|: |, )*\}})'


_DEPTH = 3
"""How deep a list's items may nest for its text to be cut out (deeper: re-encoded)."""


@functools.cache
def _list_pattern(depth: int) -> str:
    """A canonical list at the start of a text, its items nested at most ``depth`` deep,
    captured as ``v`` (the text may go on after it). The pattern is made no deeper than the
    column's Arrow type needs: RE2's cost grows fast with it (about 4x from depth 2 to 3)."""
    return rf'^(?P<v>\[(?:{_value(min(depth, _DEPTH))}|, )*\])'


def _depth(t: pa.DataType) -> int:
    """How deeply values of Arrow type ``t`` nest (a scalar: 0, a list of scalars: 1)."""
    if pa.types.is_struct(t):
        return 1 + max((_depth(f.type) for f in t), default=0)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return 1 + _depth(t.value_type)
    return 0


class Unsupported(ValueError):
    """The records' shape has no Arrow typing identical to the per-record path's."""


class ResultPages(list[RawRecord]):
    """A campaign's records as fetched page by page, with each page's table (or None where
    the page has no Arrow typing of its own), built on ``executor`` while the next page was
    fetched."""

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self._executor = executor
        self._tables: list[Future[pa.Table | None]] = []

    def add(self, records: list[RawRecord]) -> None:
        self.extend(records)
        if records:
            self._tables.append(self._executor.submit(_page_table, records))

    def joined(self) -> pa.Table | None:
        """The pages' tables as one parse of all the records would give them, or None.

        Columns come in the order of the first page that has them: pandas' order over all the
        records (a page's own order is pandas' over the page). A column some pages lack holds
        nulls there, as a whole parse reads an absent key, unless it lies inside a dict (a
        whole parse would find the dict missing in some records: None, and the caller parses
        the whole). Types must agree, a page's all-null column aside."""
        built = [f.result() for f in self._tables]
        tables = [t for t in built if t is not None]
        if not tables or len(tables) < len(built):
            return None
        types: dict[str, pa.DataType] = {}
        for t in tables:
            for f in t.schema:
                known = types.get(f.name)
                if known is None or pa.types.is_null(known):
                    types[f.name] = f.type
                elif not (pa.types.is_null(f.type) or f.type == known):
                    return None
        for t in tables:
            if any(n.count(".") > 1 and n not in t.column_names for n in types):
                return None
        try:
            table = pa.concat_tables(tables, promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        return table.select(list(types))


def _page_table(records: Sequence[RawRecord]) -> pa.Table | None:
    try:
        return _table(records)
    except Unsupported:
        return None


def _texts(column: Iterable[str]) -> pa.Array:
    return pa.array(column, _TEXT)


class _Sections:
    """The records' ``trial`` and ``result`` texts, and (once asked for) which of them are in
    ``json.dumps``'s form."""

    def __init__(self, trials: Iterable[str], results: Iterable[str]) -> None:
        self.texts = {"trial": _texts(trials), "result": _texts(results)}
        self._canonical: dict[str, pa.Array] = {}

    def canonical(self, section: str) -> pa.Array:
        if section not in self._canonical:
            self._canonical[section] = pc.match_substring_regex(self.texts[section],
                                                                pattern=_TOKENS)
        return self._canonical[section]


def _ndjson(trials: pa.Array, results: pa.Array) -> pa.Buffer:
    """One ``{"trial": …, "result": …}`` per line, the stored texts spliced in unparsed."""
    parts = [pa.scalar(s, _TEXT) for s in ('{"trial":', ',"result":', "}\n", "")]
    lines = pc.binary_join_element_wise(parts[0], trials, parts[1], results, parts[2], parts[3])
    end = int(np.frombuffer(lines.buffers()[1], np.int64)[lines.offset + len(lines)])
    return lines.buffers()[2].slice(0, end)


def _textual(t: pa.DataType) -> pa.DataType:
    """``t`` with every date, time or timestamp type (Arrow's guesses from strings) a string."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_textual(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_textual(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_textual(t.value_type)))
    return t


def _read(document: pa.Buffer) -> pa.Table:
    options = pajson.ReadOptions(block_size=_BLOCK, use_threads=True)
    try:
        table = pajson.read_json(pa.BufferReader(document), read_options=options)
        schema = pa.schema([f.with_type(_textual(f.type)) for f in table.schema])
        if not schema.equals(table.schema):  # a string read as a date: read it as text
            parse = pajson.ParseOptions(explicit_schema=schema)
            table = pajson.read_json(pa.BufferReader(document), read_options=options,
                                     parse_options=parse)
    except pa.ArrowInvalid as exc:  # a field changes type between records
        raise Unsupported(str(exc)) from exc
    return table


def _leaves(fields: Iterable[pa.Field], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The key paths of the flattened columns, in :meth:`pyarrow.Table.flatten`'s order."""
    out: list[tuple[str, ...]] = []
    for f in fields:
        if pa.types.is_struct(f.type):
            out += _leaves(f.type, (*path, f.name))
        else:
            out.append((*path, f.name))
    return out


def _flatten(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        for col, f in zip(table.columns, table.schema, strict=True):
            if pa.types.is_struct(f.type) and (col.null_count or f.type.num_fields == 0):
                raise Unsupported(f"{f.name} is a dict in some records only")
        table = table.flatten()
    return table


def _cut_lists(texts: pa.Array, key: str, canonical: pa.Array, depth: int
               ) -> tuple[pa.Array, pa.Array]:
    """The text of the list under ``key`` in each record (its items nested at most ``depth``
    deep: the Arrow type's depth, so the pattern is exact for every record it can be), and
    where that text is exact (elsewhere the caller re-encodes).

    Each row's view starts after its key's first occurrence and runs on into the next row (the
    views share ``texts``' buffer); the anchored pattern ends at the list's closing bracket.
    """
    pattern = json.dumps(key) + ": "
    once = pc.equal(pc.count_substring(texts, pattern), 1)
    found = pc.find_substring(texts, pattern).to_numpy()
    offsets = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset:][: len(texts) + 1]
    starts = np.where(found >= 0, offsets[:-1] + found + len(pattern), offsets[:-1])
    views = pa.Array.from_buffers(_TEXT, len(texts), [None, pa.py_buffer(
        np.append(starts, offsets[-1])), texts.buffers()[2]])
    matched = pc.extract_regex(views, pattern=_list_pattern(depth))  # null: no canonical list
    exact = pc.and_(pc.and_(canonical, once), pc.is_valid(matched))
    return matched.field("v"), exact


def _reencoded(section: pa.Array, path: Sequence[str], rows: Sequence[int]) -> list[str]:
    """``json.dumps`` of the list at ``path`` of each of these records (Python's parse)."""
    out = []
    for row in rows:
        value: Any = json.loads(section[row].as_py())
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, list):
            raise Unsupported(f"{'.'.join(path)} is a list in some records only")
        out.append(json.dumps(value))
    return out


def _lists_as_json(table: pa.Table, paths: list[tuple[str, ...]], sections: _Sections
                   ) -> pa.Table:
    for i, f in enumerate(table.schema):
        if not (pa.types.is_list(f.type) or pa.types.is_large_list(f.type)):
            continue
        section, *path = paths[i]
        if not path:
            raise Unsupported(f"the {section} of a record is not a dict")
        texts = sections.texts[section]
        lists, exact = _cut_lists(texts, path[-1], sections.canonical(section),
                                  _depth(f.type.value_type))
        present = table.column(i).combine_chunks().is_valid()
        redo = pc.and_(present, pc.invert(exact))
        rows = pc.indices_nonzero(redo).to_pylist()
        if rows:
            lists = pc.replace_with_mask(lists, redo, _texts(_reencoded(texts, path, rows)))
        lists = pc.if_else(present, lists, pa.scalar(None, _TEXT))
        table = table.set_column(i, f.name, lists.cast(pa.string()))
    return table


def _table(raw: Sequence[RawRecord]) -> pa.Table:
    keys, attempts, trials, results = zip(*raw, strict=True)
    sections = _Sections(trials, results)
    table = _read(_ndjson(sections.texts["trial"], sections.texts["result"]))
    paths = _leaves(table.schema)
    table = _flatten(table)
    if len(set(table.column_names)) != table.num_columns:  # a key ``a.b`` and a nested a→b
        raise Unsupported("a dotted key collides with a nested one")
    table = _lists_as_json(table, paths, sections).select(_pandas_order(table, paths, sections))
    table = table.add_column(0, "attempts", pa.array(attempts, pa.int64()))
    return table.add_column(0, "key", pa.array(keys, pa.string()))


def _flat_names(record: dict[str, Any], prefix: str) -> list[str]:
    """The per-record path's column names of one record's section, in its order."""
    out: list[str] = []
    for k, v in record.items():
        out += _flat_names(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def _pandas_order(table: pa.Table, paths: list[tuple[str, ...]], sections: _Sections
                  ) -> list[str]:
    """The columns in the per-record path's order: pandas puts each one where the first record
    that has it puts it. A column missing from the first record is looked for, in order, in
    the records whose text names its key (or is not ``json.dumps``'s), up to its first value."""
    names: dict[int, list[str]] = {}

    def row_names(row: int) -> list[str]:
        if row not in names:
            names[row] = [n for s, texts in sections.texts.items()
                          for n in _flat_names(json.loads(texts[row].as_py()), s + ".")]
        return names[row]

    first = set(row_names(0))
    for i, name in enumerate(table.column_names):
        if name in first:
            continue
        section, *path = paths[i]
        valued = pc.indices_nonzero(table.column(i).combine_chunks().is_valid())
        texts = sections.texts[section][: (valued[0].as_py() + 1) if len(valued) else None]
        named = pc.or_(pc.greater(pc.count_substring(texts, json.dumps(path[-1]) + ": "), 0),
                       pc.invert(pc.match_substring_regex(texts, pattern=_TOKENS)))
        for row in pc.indices_nonzero(named).to_numpy():  # the last one has a value
            if name in row_names(int(row)):
                break
    order = list(dict.fromkeys(n for row in sorted(names) for n in names[row]))
    if sorted(order) != sorted(table.column_names):
        raise Unsupported("the records' keys differ from the table's columns")
    return order


def results_table(raw: Sequence[RawRecord]) -> pa.Table:
    """``key``, ``attempts``, ``trial.*``, ``result.*``; raises :class:`Unsupported`."""
    if not raw:
        return pa.table({"key": pa.array([], pa.string()), "attempts": pa.array([], pa.int64())})
    if isinstance(raw, ResultPages) and (joined := raw.joined()) is not None:
        return joined
    return _table(raw)
