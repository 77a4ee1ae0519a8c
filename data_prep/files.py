"""Files every stage writes or checks the same way: JSON Lines and sha256 digests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks so a multi-gigabyte shard needs no matching memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def jsonl_line(row: Any) -> str:
    """One JSON Lines line: non-ASCII text kept as is (Cyrillic, Kazakh and Chinese stay readable), newline ended."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    """Write `rows` as JSON Lines (UTF-8), replacing the file; returns how many rows were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(jsonl_line(row))
            count += 1
    return count
