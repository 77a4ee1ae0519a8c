"""A cache of generations and scores, so a re-run or an interrupted run does not regenerate what it has.

Entries are keyed by a hash of (what was asked, the model's identity, the prompt, the settings) and appended
to one JSON Lines file as each answer arrives; a line cut short by an interruption is ignored on the next
run. The file holds answers, not prompts, and lives in the evaluation directory next to the report.

The identity names the weights that answer, not just where they are served: a new checkpoint behind the same
URL and name must miss the cache (see `_served.endpoint_identity`; local models use their files).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from data_prep.files import jsonl_line


def cache_key(kind: str, model: str, payload: Any, settings: dict[str, Any]) -> str:
    """sha256 over canonical JSON: the same model identity, prompt and settings always give the same key."""
    blob = json.dumps([kind, model, payload, settings], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class GenerationCache:
    """Thread-safe append-only cache; `path=None` keeps nothing (caching switched off)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._cut_line = False
        if path is not None and path.is_file():
            with path.open("rb") as raw:
                raw.seek(0, 2)
                if raw.tell():
                    raw.seek(-1, 2)
                    self._cut_line = raw.read(1) != b"\n"
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # the last line of an interrupted run
                    if isinstance(entry, dict) and "key" in entry:
                        self._entries[entry["key"]] = entry.get("value")

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key in self._entries:
                self.hits += 1
                return self._entries[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                if self._cut_line:  # end the line an interrupted run left unfinished
                    handle.write("\n")
                    self._cut_line = False
                handle.write(jsonl_line({"key": key, "value": value}))
                handle.flush()
