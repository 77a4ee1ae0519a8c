"""A source that is a folder: its files found recursively in a stable order, each read by its format's reader.

Exports often come as a folder (one FHIR bundle or C-CDA document per patient, one HL7 message per file). Every
record keeps the file it came from (its path under the folder), one file that cannot be read becomes a reject
at that file instead of stopping the run, and files of no format medtune reads (a README, a PDF) are counted as
skipped, never silently dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from data_prep.config import RECORD_KIND_OF_FORMAT
from data_prep.readers.errors import SourceError
from data_prep.readers.notes import NOTE_SUFFIXES
from data_prep.readers.rows import CONTAINER_OF_SUFFIX
from data_prep.readers.skip import Skip
from data_prep.records import Record, Reject

ROW_SUFFIXES = tuple(CONTAINER_OF_SUFFIX)
SUFFIXES_OF_FORMAT: dict[str, tuple[str, ...]] = {
    "clinic_records": ROW_SUFFIXES,
    "fhir": (".json", ".ndjson", ".jsonl"),
    "hl7v2": (".hl7", ".er7", ".msg", ".txt", ""),
    "ccda": (".xml", ".cda"),
    "notes": NOTE_SUFFIXES,
    "dialogue": (*ROW_SUFFIXES, ".text"),
    "exam": ROW_SUFFIXES,
    "chat": ROW_SUFFIXES,
    "glossary": ROW_SUFFIXES,
    "preference": ROW_SUFFIXES,
}
"""The files of a folder each format reads, by name ending (``""``: no ending)."""
DATA_SUFFIXES = frozenset(suffix for suffixes in SUFFIXES_OF_FORMAT.values() for suffix in suffixes) - {".md"}
"""The files ``auto`` looks at in a folder (a Markdown file there is the export's README, unless ``format: notes``
says otherwise)."""

Item = Record | Reject | Skip
FileReader = Callable[[Path], Iterator[Item]]


def folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, recursively, in order of their path under it; hidden ones left out."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def found_in(files: list[Path]) -> str:
    """What a folder holds, by name ending, for an error message ("3 .pdf, 1 .md")."""
    counts = Counter(_suffix(p) or "(no ending)" for p in files)
    return ", ".join(f"{n} {suffix}" for suffix, n in counts.most_common()) or "no files"


def folder_format(folder: Path, detect: Callable[[Path], str]) -> tuple[str, dict[Path, str]]:
    """The format of a folder read with ``format: auto``: the one it is read as (the most common of its files';
    all must make the same kind of record), and each data file's own as ``detect`` tells it, or, where it cannot,
    the reason (``!empty_file``)."""
    files = folder_files(folder)
    formats: dict[Path, str] = {}
    for path in files:
        if _suffix(path) not in DATA_SUFFIXES:
            continue
        try:
            formats[path] = detect(path)
        except SourceError as exc:
            formats[path] = "!" + _file_problem(str(exc))
    counts = Counter(fmt for fmt in formats.values() if not fmt.startswith("!"))
    if not counts:
        problems = Counter(fmt[1:] for fmt in formats.values())
        told = f" ({', '.join(f'{n} {why}' for why, n in problems.most_common())})" if problems else ""
        raise SourceError(
            f"{folder}: no file in this folder is in a format medtune reads (found: {found_in(files)}{told}); "
            "set `format:` or point `path:` at the export"
        )
    kinds = Counter(RECORD_KIND_OF_FORMAT[fmt] for fmt in counts.elements())
    if len(kinds) > 1:
        mixed = ", ".join(f"{n} {fmt}" for fmt, n in counts.most_common())
        raise SourceError(
            f"{folder}: the folder mixes files that make different kinds of record ({mixed}); "
            "make each kind its own source"
        )
    return counts.most_common(1)[0][0], formats


def read_folder(
    folder: Path, fmt: str, read_file: Callable[[Path, str], Iterator[Item]], formats: dict[Path, str] | None = None
) -> Iterator[Item]:
    """The items of every file of ``folder`` that ``fmt`` reads (read with ``auto``: the files in ``formats``, each
    in its own format), each located by its path under the folder; other files are skipped, and a file that cannot
    be read is a reject at that file."""
    files = folder_files(folder)
    wanted = SUFFIXES_OF_FORMAT.get(fmt, ())
    if formats is None:
        formats = {p: fmt for p in files if _suffix(p) in wanted}
        if not formats:
            raise SourceError(
                f"{folder}: no {fmt} file in this folder (looked for "
                f"{', '.join(s or '(no ending)' for s in wanted)}; found: {found_in(files)})"
            )
    for path in files:
        relative = path.relative_to(folder).as_posix()
        own = formats.get(path)
        if own is None:
            yield Skip(relative, relative, "not_an_export", _suffix(path) or "(no ending)")
        elif own.startswith("!"):
            yield Reject(relative, relative, own[1:])
        else:
            yield from _located(path, relative, read_file(path, own))


def _located(path: Path, relative: str, items: Iterator[Item]) -> Iterator[Item]:
    """``items`` of the file at ``path`` named by ``relative`` (its path under the folder) instead of its name."""
    name = path.name
    try:
        for item in items:
            if relative != name and item.source == name:
                location = relative + item.location[len(name) :] if item.location.startswith(name) else item.location
                item = replace(item, source=relative, location=location)
            yield item
    except SourceError as exc:
        yield Reject(relative, relative, _file_problem(str(exc)))


def _file_problem(message: str) -> str:
    """A short reason for a file that could not be read at all, from its SourceError."""
    for words, reason in (
        ("the file is empty", "empty_file"),
        ("encoding", "bad_encoding"),
        ("binary data", "binary_file"),
        ("cannot tell", "unknown_format"),
    ):
        if words in message:
            return reason
    return "unreadable_file"
