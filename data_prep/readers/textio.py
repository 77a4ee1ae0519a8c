"""Opening exports as text: the encoding they were written in, and their lines one at a time.

Clinic systems write UTF-8 (with or without a byte-order mark), Windows code pages (cp1251 in Russia
and Kazakhstan), GBK/GB18030 in China, and UTF-16 from Excel's "Unicode text". Guessing wrong turns
every name and diagnosis into mojibake that then trains the model, so a declared encoding is checked
against the bytes, and detection prefers a clear error over a doubtful guess.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from charset_normalizer import from_bytes

from data_prep.readers.errors import SourceError

SAMPLE_BYTES = 256 * 1024
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
CANDIDATES: tuple[str, ...] = ("cp1251", "gb18030", "koi8_r", "cp866", "big5")
"""Legacy encodings of Russian, Kazakh and Chinese clinic systems, tried when the bytes are not UTF."""
SINGLE_BYTE = frozenset({"cp1251", "koi8_r", "cp866", "cp1252", "latin_1", "iso8859_5", "windows_1251"})
REPLACEMENT = "\ufffd"


def _sample(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SAMPLE_BYTES)


def _is_utf8(sample: bytes, whole: bool) -> bool:
    """Strict UTF-8, allowing a multi-byte character cut off at the end of a partial sample."""
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return not whole and exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data"


def _mostly_utf8(sample: bytes) -> bool:
    """UTF-8 with a few corrupt bytes: many valid multi-byte characters, few invalid sequences.

    Legacy code pages almost never form valid multi-byte UTF-8 by chance, so the ratio tells a
    UTF-8 export with one damaged line (rejected line by line) from a cp1251 or GBK file.
    """
    text = sample.decode("utf-8", errors="replace")
    bad = text.count(REPLACEMENT)
    valid = sum(1 for ch in text if ch > "\x7f") - bad
    return valid > 0 and valid >= 20 * bad


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text of mostly ASCII/Cyrillic has a zero or small high byte in every other position."""
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def normalize_encoding(name: str) -> str:
    """GBK and GB2312 are read as GB18030, their superset, so rarer characters survive."""
    canonical = codecs.lookup(name).name
    return "gb18030" if canonical in ("gbk", "gb2312") else canonical


def detect_encoding(path: Path, declared: str = "auto") -> str:
    """The encoding to read ``path`` with; a declared one is checked against the bytes.

    Raises SourceError naming the file when the declared encoding cannot be right or when nothing
    decodes the bytes, rather than letting mojibake or replacement characters through.
    """
    sample = _sample(path)
    whole = path.stat().st_size <= len(sample)
    bom = next((enc for mark, enc in BOMS if sample.startswith(mark)), None)
    if declared != "auto":
        return _check_declared(path, sample, whole, normalize_encoding(declared), bom)
    if bom:
        return bom
    if b"\x00" in sample:
        if utf16 := _utf16_without_bom(sample):
            return utf16
        raise SourceError(f"{path.name}: binary data (NUL bytes), not a text export")
    if _is_utf8(sample, whole) or _mostly_utf8(sample):
        return "utf-8"
    best = _best_legacy(sample, whole)
    if best is None:
        raise SourceError(
            f"{path.name}: cannot tell the text encoding (not UTF-8, UTF-16, cp1251, GB18030, KOI8-R, cp866 "
            "or Big5); set `encoding:` for this source"
        )
    return normalize_encoding(best)


def _decoded_part(sample: bytes, encoding: str, whole: bool) -> bytes | None:
    """The part of ``sample`` that ``encoding`` decodes strictly, up to a character cut off at the end of a
    partial sample; None when the bytes cannot be in that encoding."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        decoder.decode(sample, final=whole)
    except UnicodeDecodeError:
        return None
    pending = len(decoder.getstate()[0])
    return sample[: len(sample) - pending] if pending else sample


def _best_legacy(sample: bytes, whole: bool) -> str | None:
    """The legacy encoding that fits the bytes best: only the candidates that decode the sample strictly are
    ranked, each by the charset library on the bytes it decodes whole, so where the sample happens to end cannot
    decide (a double-byte character cut in two there would otherwise rule GBK out)."""
    matches = []
    for encoding in CANDIDATES:
        part = _decoded_part(sample, encoding, whole)
        if part is None:
            continue
        best = from_bytes(part, cp_isolation=[encoding]).best()
        if best is not None:
            matches.append(best)
    return min(matches).encoding if matches else None


def _check_declared(path: Path, sample: bytes, whole: bool, declared: str, bom: str | None) -> str:
    if bom:
        family = codecs.lookup(bom).name.replace("-sig", "")
        if not codecs.lookup(declared).name.replace("-sig", "").startswith(family):
            raise SourceError(f"{path.name}: declared encoding {declared} but the file starts with a {bom} mark")
        return bom
    try:
        codecs.getincrementaldecoder(declared)(errors="strict").decode(sample, final=whole)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path.name}: declared encoding {declared} does not fit the bytes (byte {exc.start}: {exc.reason}); "
            "set the right `encoding:` or `auto`"
        ) from None
    if declared in SINGLE_BYTE and any(b >= 0x80 for b in sample) and _is_utf8(sample, whole):
        raise SourceError(
            f"{path.name}: declared encoding {declared} but the file is valid UTF-8; reading it as {declared} "
            "would garble every non-Latin letter. Set `encoding: utf-8` or `auto`"
        )
    return declared


def open_text(path: Path, encoding: str) -> IO[str]:
    """A text stream that never raises on bad bytes: they become U+FFFD and the caller rejects that line."""
    return io.open(path, encoding=encoding, errors="replace", newline="")  # noqa: UP020


def iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) for CR, LF and CRLF line ends alike."""
    with io.open(path, encoding=encoding, errors="replace", newline=None) as handle:  # noqa: UP020
        for lineno, line in enumerate(handle, start=1):
            yield lineno, line.rstrip("\n")


def has_bad_bytes(text: str) -> bool:
    """Whether decoding had to replace bytes: such a line is rejected, never half-read."""
    return REPLACEMENT in text


class Reencoded(io.RawIOBase):
    """A text stream seen as UTF-8 bytes, so that ijson and line splitting work on any source encoding."""

    def __init__(self, text: Any) -> None:
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._pending) < len(buffer):
            chunk = self._text.read(64 * 1024)
            if not chunk:
                break
            self._pending += chunk.encode("utf-8", errors="surrogatepass")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
