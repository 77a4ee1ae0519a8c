"""The output folder guard of prepare: which files a folder may hold, refused before anything is read or written.

Prepare records the files it writes in `MARKER_NAME` before writing any; a later prepare replaces those and
only those. A folder that overlaps a source, is a file, or holds a file at an output path that no earlier
prepare wrote is refused with an `OutputError` that names the path and how to fix it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from data_prep.config import DataConfig, path_overlap
from data_prep.sources import source_path
from data_prep.split import SPLITS

MARKER_NAME = ".medtune-prepare.json"
"""Lists the files prepare writes in a folder: those, and only those, a later prepare may replace."""
WRITTEN_BY = "medtune prepare"
OUTPUT_FILES: tuple[str, ...] = (
    *(f"{split}.jsonl" for split in SPLITS),
    "eval_only.jsonl",
    "rejects.jsonl",
    "data_card.json",
    "data_card.md",
    MARKER_NAME,
)


class OutputError(ValueError):
    """An output folder prepare must not write to; the message names the path and how to fix it."""


def _json_or_none(path: Path) -> Any:
    """The JSON in a plain file, or None when it is missing, a link or not JSON."""
    try:
        return None if path.is_symlink() else json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _earlier_outputs(out_dir: Path) -> set[str]:
    """Names of the files an earlier prepare wrote in ``out_dir``, from its marker; a folder prepared before
    markers existed is vouched for by its medtune data card."""
    if os.path.lexists(out_dir / MARKER_NAME):
        record = _json_or_none(out_dir / MARKER_NAME)
        ours = isinstance(record, dict) and record.get("written_by") == WRITTEN_BY
        if not ours or not isinstance(record.get("files"), list):
            return set()
        return {name for name in record["files"] if name in OUTPUT_FILES} | {MARKER_NAME}
    card = _json_or_none(out_dir / "data_card.json")
    if isinstance(card, dict) and {"records", "examples", "splits", "invariants"} <= set(card):
        return set(OUTPUT_FILES) - {MARKER_NAME}
    return set()


def _check_is_a_folder(out_dir: Path) -> None:
    """``out_dir`` is a folder, or can be made: neither it nor a parent is a file."""
    for folder in (out_dir, *out_dir.parents):
        if os.path.lexists(folder):
            if folder.is_dir():
                return
            where = "is a file" if folder == out_dir else f"cannot be made: {folder} is a file"
            raise OutputError(f"output folder {out_dir} {where}, not a folder; name a folder for the prepared "
                              f"data, e.g. {out_dir.parent / 'prepared'}")


def check_output_dir(config: DataConfig, out_dir: Path) -> list[Path]:
    """Refuse, before anything is read or written, an output folder that overlaps a source or holds a file at an
    output path that no earlier prepare wrote; returns the files of an earlier prepare this run replaces."""
    out_dir = Path(out_dir)
    for source in config.sources:
        if source.path is not None and (overlap := path_overlap(source_path(source), out_dir)):
            raise OutputError(f"{overlap}: prepare would write over or re-read the export; choose an output "
                              "folder that holds no source (--out, or output_dir in a recipe)")
    _check_is_a_folder(out_dir)
    if not out_dir.is_dir():
        return []
    earlier = _earlier_outputs(out_dir)
    existing = [out_dir / name for name in OUTPUT_FILES if os.path.lexists(out_dir / name)]
    foreign = [p for p in existing if p.name not in earlier or p.is_symlink() or not p.is_file()]
    if foreign:
        raise OutputError(
            f"output folder {out_dir} already holds {', '.join(p.name for p in foreign)}, not written by an earlier "
            f"prepare (none recorded in {MARKER_NAME}); nothing was written: move those files away or choose "
            "another output folder"
        )
    return [p for p in existing if p.name != MARKER_NAME]


def write_marker(out_dir: Path) -> None:
    """Record the outputs before writing any, so a run that is stopped half-way can still be redone."""
    record = {"written_by": WRITTEN_BY, "files": list(OUTPUT_FILES)}
    (out_dir / MARKER_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
