"""What every row-shaped content reader shares: mapping columns, size checks and rejects in place."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from data_prep.readers.mapping import apply_mapping, resolve_mapping
from data_prep.readers.rows import MAX_FIELD_CHARS, Header, Row, iter_rows, oversized_field
from data_prep.records import Record, Reject

RowConverter = Callable[[str, str, dict[str, Any]], Record | Reject]
"""(source name, location, mapped row) → Record, or a Reject naming the field at fault."""


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def text_of(value: Any) -> str:
    """A cell as text: numbers from spreadsheets become their digits, None becomes ''."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def declared_lang(data: Mapping[str, Any], default: str | None) -> str | None:
    """The row's own language tag (``lang``/``language``) or the source's."""
    for key in ("lang", "language"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()[:2] if "-" in value or "_" in value else value.strip().lower()
    return default


def read_rows(
    path: Path,
    convert: RowConverter,
    *,
    columns: Mapping[str, str] | None = None,
    synonyms: Mapping[str, tuple[str, ...]] | None = None,
    container: str = "auto",
    encoding: str = "auto",
    delimiter: str | None = None,
    sheet: str | None = None,
) -> Iterator[Record | Reject]:
    """Rows of ``path`` through ``convert``; column mapping is checked against the header once."""
    name = path.name
    explicit = dict(columns or {})
    mapping: dict[str, str] | None = None
    row_mappings: dict[tuple[str, ...], dict[str, str]] = {}
    for item in iter_rows(path, container, encoding, delimiter, sheet):
        if isinstance(item, Header):
            mapping = resolve_mapping(item.columns, explicit, synonyms or {}, name)
            continue
        if isinstance(item, Reject):
            yield item
            continue
        row: Row = item
        row_mapping = mapping
        if row_mapping is None:
            # JSON rows have no header: map each row by its own keys (rows of one export share them).
            keys = tuple(row.data)
            if keys not in row_mappings:
                present = {f: c for f, c in explicit.items() if c in row.data}
                row_mappings[keys] = resolve_mapping(keys, present, synonyms or {}, name)
            row_mapping = row_mappings[keys]
        data = apply_mapping(row.data, row_mapping)
        if (row.size is None or row.size > MAX_FIELD_CHARS) and (too_long := oversized_field(data)):
            yield Reject(name, row.location, "field_too_long", too_long)
            continue
        yield convert(name, row.location, data)


def row_options(source: Any) -> dict[str, Any]:
    """The container options of a SourceConfig, for read_rows (none without a config)."""
    if source is None:
        return {}
    return {
        "columns": source.columns,
        "container": source.container,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
        "sheet": source.sheet,
    }
