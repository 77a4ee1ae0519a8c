"""Reading suite and glossary files: one object per item with its file:line, the fields checked as they are read.

A malformed item stops loading with its location and field, so a benchmark is never scored on a silently
smaller subset.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from data_prep.readers import Header, SourceError, iter_rows
from data_prep.records import Reject
from finetune.eval._metrics import GlossaryTerm

EVAL_LANGS = ("ru", "kk", "zh", "en")

READ_PROBLEMS = {
    "invalid_json": "not valid JSON",
    "truncated_json": "the JSON ends in the middle of an item",
    "not_an_object": "expected a JSON object",
    "bad_encoding": "bytes that do not decode in the file's encoding",
    "invalid_csv": "not valid CSV",
    "column_count": "a row with another number of cells than the header",
}


class SuiteError(ValueError):
    """An evaluation suite or glossary that cannot be read; the message names the file, line and field."""


def read_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line or file:[index], object) for every item of a suite or glossary file.

    Read by data_prep's row readers, so the same exports load here as in `medtune prepare`: JSON Lines, JSON
    arrays (also `{"data": [...]}` and a `.json` that is really JSON Lines), CSV/TSV, XLSX and Parquet, in any
    encoding they detect. A JSON object of id → item (PubMedQA's layout) gives one item per id. A malformed item
    stops loading with its location: a benchmark is never scored on a silently smaller subset.
    """
    if not path.is_file():
        raise SuiteError(f"{path}: no such file")
    rows = _rows(path)
    first, second = next(rows, None), next(rows, None)
    if first is not None and second is None and first[1] and all(isinstance(v, dict) for v in first[1].values()):
        for key, item in first[1].items():
            yield f"{path}[{key!r}]", {"id": str(key), **item}
        return
    yield from (row for row in (first, second) if row is not None)
    yield from rows


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        for row in iter_rows(path):
            if isinstance(row, Header):
                continue
            where = str(path.parent / row.location)
            if isinstance(row, Reject):
                detail = f" ({row.field})" if row.field else ""
                raise SuiteError(f"{where}: {READ_PROBLEMS.get(row.reason, row.reason)}{detail}")
            yield where, row.data
    except SourceError as exc:
        raise SuiteError(str(exc)) from None


def require_field(obj: dict[str, Any], where: str, *names: str, kind: type | tuple[type, ...] = str) -> Any:
    """The first of `names` that is present and not empty; it must be of `kind`."""
    for name in names:
        if name in obj and obj[name] is not None and obj[name] != "":
            value = obj[name]
            if not isinstance(value, kind):
                raise SuiteError(f"{where}: field {name!r} must be {_type_name(kind)}, got {type(value).__name__}")
            return value
    raise SuiteError(f"{where}: missing field {' or '.join(repr(n) for n in names)}")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"str": "text", "list": "a list", "dict": "an object", "int": "an integer"}.get(
        k.__name__, k.__name__) for k in kinds)


def item_lang(obj: dict[str, Any], where: str, default: str | None) -> str:
    """The item's `lang`, or the suite's when the item has none; one of EVAL_LANGS."""
    lang = obj.get("lang", default)
    if lang is None:
        raise SuiteError(f"{where}: no language: add a 'lang' field or set `lang` for this suite in the recipe")
    if lang not in EVAL_LANGS:
        raise SuiteError(f"{where}: field 'lang' is {lang!r}; supported: {', '.join(EVAL_LANGS)}")
    return lang


def bundled_suite_path(format_name: str) -> Path:
    return Path(str(resources.files("finetune.eval") / "suites" / f"{format_name}.jsonl"))


def bundled_glossary_path() -> Path:
    return Path(str(resources.files("finetune.eval") / "suites" / "glossary.jsonl"))


# --- glossary --------------------------------------------------------------------------------------


def _split_list(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("|") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise SuiteError(f"{where}: field {name!r} must be a list of texts (or texts separated by '|')")


def load_glossary(path: Path) -> list[GlossaryTerm]:
    """Glossary rows: lang, term, variants (inflected forms), avoid (words that must not replace the term).

    Any layout `read_objects` reads; in tables (CSV, TSV, XLSX) list entries are separated by '|'.
    """
    rows = list(read_objects(path))
    terms = []
    for where, row in rows:
        lang = item_lang(row, where, None)
        term = require_field(row, where, "term")
        terms.append(GlossaryTerm(lang, term.strip(), _split_list(row.get("variants"), where, "variants"),
                                  _split_list(row.get("avoid"), where, "avoid")))
    if not terms:
        raise SuiteError(f"{path}: the glossary holds no terms")
    return terms
