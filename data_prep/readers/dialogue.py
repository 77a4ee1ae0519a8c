"""Doctor–patient dialogues: speaker-prefixed lines, the public ``id=``/Description/Dialogue layout,
or rows of turns.

Speakers are recognised by their prefix in each language (Врач:/Пациент:, Дәрігер:/Науқас:,
医生：/病人：, Doctor:/Patient:), which also tells the dialogue's language. A line without a prefix
continues the turn before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.base import declared_lang, read_rows, row_options, text_of
from data_prep.readers.textio import detect_encoding, has_bad_bytes, iter_lines
from data_prep.records import Record, Reject

# fmt: off
SPEAKERS: dict[str, tuple[str, str]] = {
    "врач": ("doctor", "ru"), "доктор": ("doctor", "ru"), "пациент": ("patient", "ru"),
    "пациентка": ("patient", "ru"), "больной": ("patient", "ru"), "больная": ("patient", "ru"),
    "дәрігер": ("doctor", "kk"), "науқас": ("patient", "kk"), "емделуші": ("patient", "kk"),
    "医生": ("doctor", "zh"), "大夫": ("doctor", "zh"), "医师": ("doctor", "zh"), "病人": ("patient", "zh"),
    "患者": ("patient", "zh"), "病患": ("patient", "zh"),
    "doctor": ("doctor", "en"), "dr": ("doctor", "en"), "physician": ("doctor", "en"),
    "patient": ("patient", "en"),
}
# fmt: on
SPEAKER_LINE = re.compile(
    r"^\s*(?P<speaker>"
    + "|".join(sorted((re.escape(s) for s in SPEAKERS), key=len, reverse=True))
    + r")\.?\s*[:：]\s*(?P<text>.*)$",
    re.IGNORECASE,
)
BLOCK_MARKERS = {"description": "description", "dialogue": "dialogue", "描述": "description", "对话": "dialogue"}
ID_LINE = re.compile(r"^\s*id\s*=\s*(?P<id>\S+)\s*$", re.IGNORECASE)
URL_LINE = re.compile(r"^\s*https?://\S+\s*$")
TURN_KEYS = ("turns", "dialogue", "utterances", "dialog", "conversation")


def _speaker(line: str) -> tuple[str, str, str] | None:
    """(role, language, text) of a speaker-prefixed line."""
    m = SPEAKER_LINE.match(line)
    if not m:
        return None
    role, lang = SPEAKERS[m.group("speaker").lower()]
    return role, lang, m.group("text").strip()


def dialogue_record(
    source: str, location: str, ident: str, lines: list[str], lang: str | None, description: str = ""
) -> Record | Reject:
    """Speaker lines (and an optional description) as a dialogue Record."""
    turns: list[dict[str, str]] = []
    votes: dict[str, int] = {}
    for line in lines:
        if has_bad_bytes(line):
            return Reject(source, location, "bad_encoding")
        if found := _speaker(line):
            role, line_lang, text = found
            votes[line_lang] = votes.get(line_lang, 0) + 1
            turns.append({"role": role, "text": text})
        elif line.strip() and turns:
            turns[-1]["text"] = f"{turns[-1]['text']}\n{line.strip()}".strip()
        elif line.strip():
            description = f"{description}\n{line.strip()}".strip()
    turns = [t for t in turns if t["text"]]
    if not turns:
        return Reject(source, location, "no_turns")
    if not any(t["role"] == "doctor" for t in turns):
        return Reject(source, location, "no_doctor_turn")
    detected = max(sorted(votes), key=lambda k: votes[k]) if votes else None
    record_lang = lang if lang not in (None, "auto") else detected or "auto"
    fields: dict[str, Any] = {"turns": turns}
    if description:
        fields["description"] = description
    return Record(source, location, f"{source}#{ident}", record_lang, fields, kind="dialogue")


def _text_dialogues(path: Path, lang: str | None, encoding: str) -> Iterator[Record | Reject]:
    """Dialogues of a text file: ``id=`` blocks, or blocks of speaker lines separated by blank lines."""
    name = path.name
    block: list[str] = []
    start, ident, count = 1, "", 0
    mode = "dialogue"
    description: list[str] = []

    def flush() -> Iterator[Record | Reject]:
        nonlocal count
        if any(line.strip() for line in block) or description:
            count += 1
            yield dialogue_record(
                name, f"{name}:{start}", ident or str(count), block, lang, "\n".join(description).strip()
            )

    uses_ids = False
    for lineno, line in iter_lines(path, encoding):
        if m := ID_LINE.match(line):
            yield from flush()
            uses_ids = True
            block, description, ident, start, mode = [], [], m.group("id"), lineno, "header"
            continue
        marker = BLOCK_MARKERS.get(line.strip().lower())
        if marker:
            mode = marker
            continue
        if mode == "header" and URL_LINE.match(line):
            continue
        if not line.strip():
            if not uses_ids and block:
                yield from flush()
                block, description, ident = [], [], ""
            continue
        if not block and not description and not uses_ids:
            start = lineno
        if mode == "description":
            description.append(line.strip())
        else:
            block.append(line)
    yield from flush()


def _row_dialogue(source: str, location: str, obj: dict[str, Any], lang: str | None) -> Record | Reject:
    turns = next((obj[k] for k in TURN_KEYS if k in obj), None)
    ident = text_of(obj.get("id")) or location.rsplit(":", 1)[-1]
    row_lang = declared_lang(obj, lang)
    description = text_of(obj.get("description"))
    if isinstance(turns, str):
        return dialogue_record(source, location, ident, turns.splitlines(), row_lang, description)
    if not isinstance(turns, list) or not turns:
        return Reject(source, location, "missing_field", "turns")
    lines = []
    for i, turn in enumerate(turns):
        if isinstance(turn, str):
            lines.append(turn)
        elif isinstance(turn, dict):
            speaker = text_of(turn.get("speaker") or turn.get("role") or turn.get("from"))
            text = text_of(turn.get("text") or turn.get("content") or turn.get("value") or turn.get("utterance"))
            if not speaker or not text:
                return Reject(source, location, "invalid_field", f"turns[{i}]")
            lines.append(f"{speaker}: {text}")
        else:
            return Reject(source, location, "invalid_field", f"turns[{i}]")
    return dialogue_record(source, location, ident, lines, row_lang, description)


def read_dialogues(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """Stream dialogues from text (``.txt``) or rows of turns (JSONL/JSON/CSV/XLSX/Parquet)."""
    path = Path(path)
    encoding = source.encoding if source else "auto"
    if path.suffix.lower() in (".txt", ".text", ""):
        yield from _text_dialogues(path, lang, detect_encoding(path, encoding))
        return

    def convert(name: str, location: str, obj: dict[str, Any]) -> Record | Reject:
        return _row_dialogue(name, location, obj, lang)

    options = row_options(source)
    yield from read_rows(path, convert, **options)
