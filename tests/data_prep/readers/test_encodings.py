"""Encoding detection that where the detection sample ends cannot fool: files written here larger than the
sample, cut in the middle of a character at the sample's end."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from data_prep.readers import iter_rows
from data_prep.readers.rows import Row
from data_prep.readers.textio import SAMPLE_BYTES, detect_encoding

DIALOGUE = [
    "医生您好，我最近总是头痛",
    "孩子发烧三天了怎么办",
    "血压高需要吃什么药",
    "建议您到医院做个检查",
    "多喝水，注意休息",
]
RUSSIAN = ["Жалобы на кашель", "Диагноз: бронхит", "Рекомендовано обильное питьё", "Контроль через неделю"]


def _csv_cut_at_sample_end(encoding: str, phrases: list[str], width: int) -> tuple[bytes, int]:
    """A CSV (newlines inside quoted cells) longer than the sample whose ``width``-byte character is cut in two
    by the sample's end; returns its bytes and its number of data rows."""
    for pad in range(8):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["id", "question", "answer"])
        writer.writerow(["0", "x" * pad, "-"])
        rows = 1
        while len(buffer.getvalue().encode(encoding)) <= SAMPLE_BYTES + 1000:
            a, b = phrases[rows % len(phrases)], phrases[(rows * 3 + 1) % len(phrases)]
            writer.writerow([str(rows), f"{a}\n{b}", f"{b}; {a}"])
            rows += 1
        data = buffer.getvalue().encode(encoding)
        start = _start_of_char_at(data, SAMPLE_BYTES - 1, encoding)
        if width == 1 or (start is not None and SAMPLE_BYTES - start < width and data[start] >= 0x80):
            return data, rows
    raise AssertionError("no padding puts a character across the sample's end")


def _start_of_char_at(data: bytes, index: int, encoding: str) -> int | None:
    """Where the character that holds byte ``index`` starts."""
    offset = 0
    for char in data[: index + 8].decode(encoding, errors="ignore"):
        size = len(char.encode(encoding))
        if offset <= index < offset + size:
            return offset
        offset += size
    return None


@pytest.mark.parametrize(
    ("encoding", "phrases", "width", "expected"),
    [
        ("gbk", DIALOGUE, 2, "gb18030"),
        ("gb18030", DIALOGUE, 2, "gb18030"),
        ("cp1251", RUSSIAN, 1, "cp1251"),
        ("utf-8", DIALOGUE, 3, "utf-8"),
        ("utf-8", RUSSIAN, 2, "utf-8"),
    ],
)
def test_a_character_cut_by_the_sample_end_does_not_hide_the_encoding(
    tmp_path: Path, encoding: str, phrases: list[str], width: int, expected: str
) -> None:
    data, rows = _csv_cut_at_sample_end(encoding, phrases, width)
    path = tmp_path / "dialogues.csv"
    path.write_bytes(data)
    if width > 1 and encoding != "utf-8":
        with pytest.raises(UnicodeDecodeError, match="incomplete multibyte"):
            data[:SAMPLE_BYTES].decode(encoding)
    assert detect_encoding(path) == expected
    read = [item for item in iter_rows(path) if isinstance(item, Row)]
    assert len(read) == rows
    assert read[5].data["question"] == f"{phrases[5 % len(phrases)]}\n{phrases[16 % len(phrases)]}"
