"""Spool files of converted example lines: each process appends the lines it makes to its own file in the output
folder and passes on only where each went (`Made.at`); the main process reads them back by place into the split
files, so the lines never cross between processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from data_prep.convert import Converted, Made

SPOOL_PREFIX = ".examples."
_SPOOLS: dict[tuple[int, str], BinaryIO] = {}
"""Open spool files by (process id, output directory)."""


def _spool_path(out_dir: Path, pid: int) -> Path:
    return out_dir / f"{SPOOL_PREFIX}{pid}.spool"


def spool_lines(converted: list[Converted], out_dir: Path) -> None:
    """Write the examples' lines to this process's spool file in ``out_dir``, one write per chunk, and leave in
    their place where they went (`Made.at`)."""
    lines = [made.line for outcome in converted for made in outcome.made]
    if not lines:
        return
    pid = os.getpid()
    spool = _SPOOLS.get((pid, str(out_dir)))
    if spool is None:
        spool = _SPOOLS[(pid, str(out_dir))] = _spool_path(out_dir, pid).open("ab")
    offset = spool.tell()
    spool.write(b"".join(lines))
    spool.flush()  # the main process may read a line back before this process ends
    for outcome in converted:
        for k, (stub, line, key, answer_chars, minhash, _) in enumerate(outcome.made):
            outcome.made[k] = Made(stub, b"", key, answer_chars, minhash, (pid, offset, len(line)))
            offset += len(line)


def close_spools(out_dir: Path) -> None:
    """Close this process's spool files for ``out_dir`` and remove every process's."""
    for key in [key for key in _SPOOLS if key[1] == str(out_dir)]:
        _SPOOLS.pop(key).close()
    for path in out_dir.glob(f"{SPOOL_PREFIX}*.spool"):
        path.unlink(missing_ok=True)


class SpooledLines:
    """Reads example lines back from the spool files by their place (`Made.at`)."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._files: dict[int, BinaryIO] = {}

    def _file(self, pid: int) -> BinaryIO:
        if pid not in self._files:
            self._files[pid] = _spool_path(self._out_dir, pid).open("rb", buffering=1 << 20)
        return self._files[pid]

    def line(self, at: tuple[int, int, int]) -> bytes:
        """One line, from a spool file that may still be growing."""
        pid, offset, length = at
        return os.pread(self._file(pid).fileno(), length, offset)

    def next_line(self, at: tuple[int, int, int]) -> bytes:
        """One line, once the spool files are complete; cheapest when each file is read in order of its
        offsets, as the split copies them (a seek within the buffer reads nothing)."""
        pid, offset, length = at
        handle = self._file(pid)
        handle.seek(offset)
        return handle.read(length)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
