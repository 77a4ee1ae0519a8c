"""Row-shaped exports (JSON Lines, JSON arrays, CSV/TSV, XLSX, Parquet) as a stream of dicts.

Content readers (clinic records, exam questions, chats, glossaries …) work on dicts and never know
which container a row came from; each row keeps a location a person can open the file at: the
line, the array index, the sheet and row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import ijson

from data_prep.readers.errors import SourceError
from data_prep.readers.textio import Reencoded, detect_encoding, has_bad_bytes, open_text
from data_prep.records import Reject

CONTAINER_OF_SUFFIX: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".parquet": "parquet",
    ".pq": "parquet",
}
MAX_FIELD_CHARS = 1_000_000
"""A longer field is a broken export (a whole file pasted into a cell), not a clinical note."""
CSV_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Header:
    """The column names of a tabular export, seen before its first row (to check a column mapping)."""

    location: str
    columns: list[str]


@dataclass(frozen=True)
class Row:
    """One row of an export and where it is in the file."""

    location: str
    data: dict[str, Any]
    size: int | None = None
    """Characters of the row as written, when known: no string in ``data`` is longer (JSON escapes only lengthen)."""


def detect_container(path: Path, declared: str = "auto") -> str:
    """``jsonl``/``json``/``csv``/``tsv``/``xlsx``/``parquet`` from the declaration, extension or first bytes."""
    if declared != "auto":
        return declared
    if path.suffix.lower() in CONTAINER_OF_SUFFIX:
        return CONTAINER_OF_SUFFIX[path.suffix.lower()]
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK"):
        return "xlsx"
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    return "csv"


def oversized_field(data: Any, prefix: str = "") -> str | None:
    """Name of the first string longer than MAX_FIELD_CHARS, anywhere in the row."""
    if isinstance(data, str):
        return prefix or "value" if len(data) > MAX_FIELD_CHARS else None
    if isinstance(data, dict):
        for key, value in data.items():
            if found := oversized_field(value, f"{prefix}.{key}" if prefix else str(key)):
                return found
    if isinstance(data, list):
        for i, value in enumerate(data):
            if found := oversized_field(value, f"{prefix}[{i}]"):
                return found
    return None


def iter_rows(
    path: Path,
    container: str = "auto",
    encoding: str = "auto",
    delimiter: str | None = None,
    sheet: str | None = None,
) -> Iterator[Header | Row | Reject]:
    """Stream the rows of ``path``; malformed rows come out as Rejects in their place."""
    container = detect_container(path, container)
    if container == "xlsx":
        yield from _xlsx_rows(path, sheet)
    elif container == "parquet":
        yield from _parquet_rows(path)
    elif container in ("csv", "tsv"):
        yield from _csv_rows(path, detect_encoding(path, encoding), delimiter or ("\t" if container == "tsv" else None))
    elif container == "json":
        yield from _json_rows(path, detect_encoding(path, encoding))
    else:
        yield from _jsonl_rows(path, detect_encoding(path, encoding))


# --- JSON -----------------------------------------------------------------------------------------


def _jsonl_rows(path: Path, encoding: str) -> Iterator[Header | Row | Reject]:
    name = path.name
    with open_text(path, encoding) as handle:
        for lineno, line in enumerate(handle, start=1):
            location = f"{name}:{lineno}"
            if has_bad_bytes(line):
                yield Reject(name, location, "bad_encoding")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                yield Reject(name, location, "invalid_json")
                continue
            if not isinstance(obj, dict):
                yield Reject(name, location, "not_an_object")
                continue
            yield Row(location, obj, len(line))


def _first_char(path: Path, encoding: str) -> str:
    with open_text(path, encoding) as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip("\ufeff \t\r\n")
            if stripped:
                return stripped[0]
    return ""


def _looks_like_json_lines(path: Path, encoding: str) -> bool:
    """A ``.json`` file whose first line is a whole object followed by more lines is JSON Lines."""
    with open_text(path, encoding) as handle:
        first = ""
        for line in handle:
            if line.strip():
                first = line
                break
        rest = handle.read(4096).strip()
    try:
        return isinstance(json.loads(first), dict) and rest.startswith("{")
    except json.JSONDecodeError:
        return False


def _top_level_list_key(path: Path, encoding: str) -> str | None:
    """The key of the first list in a top-level object (``{"data": [...]}``), found by streaming."""
    with open_text(path, encoding) as handle:
        key = None
        try:
            for prefix, event, value in ijson.parse(Reencoded(handle)):
                if prefix == "" and event == "map_key":
                    key = value
                elif key is not None and prefix == key:
                    if event == "start_array":
                        return key
                    key = None
        except ijson.JSONError:
            return None
    return None


def _json_rows(path: Path, encoding: str) -> Iterator[Header | Row | Reject]:
    name = path.name
    first = _first_char(path, encoding)
    if not first:
        return
    if first == "{" and _looks_like_json_lines(path, encoding):
        yield from _jsonl_rows(path, encoding)
        return
    if first == "[":
        prefix, label = "item", ""
    elif first == "{":
        key = _top_level_list_key(path, encoding)
        prefix, label = (f"{key}.item", key) if key else ("", "")
    else:
        yield Reject(name, f"{name}:1", "invalid_json")
        return
    index = -1
    with open_text(path, encoding) as handle:
        try:
            for index, obj in enumerate(ijson.items(Reencoded(handle), prefix, use_float=True)):
                location = f"{name}:{label}[{index}]" if prefix else f"{name}:1"
                if not isinstance(obj, dict):
                    yield Reject(name, location, "not_an_object")
                else:
                    yield Row(location, obj)
        except ijson.IncompleteJSONError:
            yield Reject(name, f"{name}:{label}[{index + 1}]", "truncated_json")
        except ijson.JSONError:
            yield Reject(name, f"{name}:{label}[{index + 1}]", "invalid_json")


# --- CSV / TSV ------------------------------------------------------------------------------------


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with open_text(path, encoding) as handle:
        sample = handle.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        return max(",;\t|", key=first.count)


def header_names(raw: list[str]) -> list[str]:
    """Column names: stripped, blank ones named by position, duplicates numbered."""
    names: list[str] = []
    for i, name in enumerate(raw, start=1):
        name = (name or "").strip().lstrip("\ufeff") or f"column_{i}"
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _csv_rows(path: Path, encoding: str, delimiter: str | None) -> Iterator[Header | Row | Reject]:
    name = path.name
    delimiter = delimiter or _sniff_delimiter(path, encoding)
    csv.field_size_limit(CSV_LIMIT)
    with open_text(path, encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header: list[str] | None = None
        last_line = 0
        while True:
            start = last_line + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error:
                last_line = reader.line_num
                yield Reject(name, f"{name}:{start}", "invalid_csv")
                continue
            last_line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = header_names(cells)
                yield Header(f"{name}:{start}", header)
                continue
            location = f"{name}:{start}"
            if any(has_bad_bytes(c) for c in cells):
                yield Reject(name, location, "bad_encoding")
            elif len(cells) != len(header):
                yield Reject(name, location, "column_count", f"{len(cells)} cells, header has {len(header)}")
            else:
                yield Row(location, {k: (v if v.strip() else None) for k, v in zip(header, cells, strict=True)})


# --- XLSX and Parquet -----------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[Header | Row | Reject]:
    from openpyxl import load_workbook

    name = path.name
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError or its own errors for broken files
        raise SourceError(f"{name}: not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise SourceError(f"{name}: no sheet {sheet!r}; sheets are {', '.join(book.sheetnames)}")
        ws = book[sheet] if sheet else book.worksheets[0]
        header: list[str] | None = None
        for row_index, values in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in values]
            if all(c is None for c in cells):
                continue
            location = f"{name}:{ws.title}!{row_index}"
            if header is None:
                header = header_names(["" if c is None else str(c) for c in cells])
                yield Header(location, header)
                continue
            cells += [None] * (len(header) - len(cells))
            if any(c is not None for c in cells[len(header) :]):
                yield Reject(name, location, "column_count", f"{len(cells)} cells, header has {len(header)}")
                continue
            yield Row(location, dict(zip(header, cells[: len(header)], strict=True)))
    finally:
        book.close()


def _parquet_rows(path: Path) -> Iterator[Header | Row | Reject]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = path.name
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{name}: not a readable Parquet file ({exc})") from None
    yield Header(f"{name}:schema", list(parquet.schema_arrow.names))
    n = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for obj in batch.to_pylist():
            n += 1
            yield Row(f"{name}:row {n}", {k: _cell(v) for k, v in obj.items()})
