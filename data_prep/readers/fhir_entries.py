"""The entries of a FHIR file, one at a time: a Bundle streamed with ijson (its type checked first), NDJSON of
bundles, or NDJSON of bare resources (a bulk export); a file or line that cannot be read becomes a Reject."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from data_prep.readers.textio import Reencoded, open_text
from data_prep.records import Reject

BUNDLE_TYPES = ("collection", "transaction", "batch", "searchset", "document", "message", "history")


def entries(path: Path, encoding: str) -> Iterator[tuple[str, Any] | Reject]:
    """(location, entry) of a Bundle file, NDJSON of bundles or NDJSON of bare resources."""
    name = path.name
    with open_text(path, encoding) as handle:
        head = handle.read(4096).lstrip("\ufeff \r\n\t")
    if not head:
        return
    first_line, complete = head.split("\n", 1)[0], "\n" in head
    try:
        one_per_line = complete and isinstance(json.loads(first_line), dict)
    except json.JSONDecodeError:
        one_per_line = False
    if one_per_line:
        with open_text(path, encoding) as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    yield Reject(name, f"{name}:{lineno}", "invalid_json")
                    continue
                if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
                    for i, entry in enumerate(obj.get("entry") or []):
                        yield f"{name}:{lineno}/entry[{i}]", entry
                else:
                    yield f"{name}:{lineno}", obj
        return
    index = -1
    with open_text(path, encoding) as handle:
        try:
            kind = None
            for prefix, event, value in ijson.parse(Reencoded(handle)):
                if prefix == "resourceType" and value != "Bundle":
                    raise _NotABundle(str(value))
                if prefix == "type":
                    kind = value
                if prefix == "entry" and event == "start_array":
                    break
            if kind is not None and kind not in BUNDLE_TYPES:
                yield Reject(name, f"{name}:1", "unsupported_bundle_type", str(kind))
                return
        except _NotABundle as exc:
            yield Reject(name, f"{name}:1", "not_a_bundle", exc.args[0])
            return
        except ijson.JSONError:
            yield Reject(name, f"{name}:1", "invalid_json")
            return
    with open_text(path, encoding) as handle:
        try:
            entries = ijson.items(Reencoded(handle), "entry.item", use_float=True, multiple_values=True)
            for index, entry in enumerate(entries):
                yield f"{name}:entry[{index}]", entry
        except ijson.IncompleteJSONError:
            yield Reject(name, f"{name}:entry[{index + 1}]", "truncated_json")
        except ijson.JSONError:
            yield Reject(name, f"{name}:entry[{index + 1}]", "invalid_json")


class _NotABundle(Exception):
    pass
