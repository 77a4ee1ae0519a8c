"""Exact and near-duplicate detection of examples.

Exports repeat themselves: the same discharge note saved twice, a template letter with one date
changed. Exact copies are caught by a hash of the messages; near copies by MinHash signatures over
word (or, for Chinese, character) shingles of the example's own content, with the instruction left
out so that every example of a task does not look alike.

Signatures are computed for many texts at once: each word is hashed once (and remembered, since clinical
text repeats its vocabulary), the shingles' hashes are combined from those in numpy, and rensa computes
the MinHash values from them. A signature is ``NUM_PERM`` 32-bit values, kept as bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Sequence
from itertools import chain

import numpy as np
import orjson
from datasketch import MinHashLSH
from rensa import RMinHash

from data_prep.records import ChatExample, TextExample

NUM_PERM = 64
SEED = 1
WORD_SHINGLE = 3
CHAR_SHINGLE = 4
WORD_MEMO = 1 << 18
"""Tokens whose word hashes each process remembers; the memory is cleared when it holds more."""
_FROM_FIRST_CJK = re.compile("[\u4e00-\U0010ffff]")
"""A character from the first CJK ideograph up: a text without one is not Chinese (one scan in C finds it)."""
_WORD = re.compile(r"\w+", re.UNICODE)
_GRAM_WEIGHTS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 1], dtype=np.uint64)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def compact_json(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON (no spaces, nothing escaped that need not be), by orjson; values orjson
    does not take (integers beyond 64 bits, say) by the standard library, in the same form."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def message_key(example: ChatExample) -> bytes:
    """Fingerprint of the message list; equal fingerprints mean exact duplicates. (Messages are
    ``{"role", "content"}`` dicts in that order, so their JSON is canonical.)"""
    return hashlib.sha256(compact_json(example.messages)).digest()


def example_line(example: ChatExample | TextExample) -> tuple[bytes, bytes]:
    """The example as one JSON line (UTF-8, newline included; ``example.to_json()`` in compact JSON) and its
    `message_key` (for a text row: of its text), the messages serialised once for both."""
    if isinstance(example, TextExample):
        text = compact_json(example.text)
        return b'{"text":' + text + b',"meta":' + compact_json(example.meta) + b"}\n", hashlib.sha256(text).digest()
    messages = compact_json(example.messages)
    line = b'{"messages":' + messages + b',"meta":' + compact_json(example.meta) + b"}\n"
    return line, hashlib.sha256(messages).digest()


def content_text(example: ChatExample | TextExample, instruction: str | None = None) -> str:
    """The non-system turns, minus the task's instruction: what makes this example this example."""
    if isinstance(example, TextExample):
        return example.text
    parts = []
    for message in example.messages:
        if message["role"] == "system":
            continue
        text = message["content"]
        if instruction and text.startswith(instruction):
            text = text[len(instruction) :]
        parts.append(text)
    return "\n".join(parts)


class _TokenWords(dict[str, tuple[int, ...]]):
    """Whitespace-separated token → crc32 (of the UTF-8) of each word (``\\w+`` run) in it lower-cased, worked out
    on first sight: splitting on spaces and remembering tokens is several times faster than a regex over every
    text, and gives the same words in the same order (lower-casing a text changes no whitespace, and a
    character's lower case depends on no character across one)."""

    def __missing__(self, token: str) -> tuple[int, ...]:
        if len(self) >= WORD_MEMO:
            self.clear()
        value = self[token] = tuple(zlib.crc32(word.encode()) for word in _WORD.findall(token.lower()))
        return value


_TOKEN_WORDS = _TokenWords()


def _mostly_chinese(lowered: Sequence[str]) -> list[bool]:
    """For each text: whether more than a third of its characters are CJK ideographs."""
    codes = np.frombuffer("".join(lowered).encode("utf-32-le"), dtype=np.uint32)
    seen = np.concatenate(([0], np.cumsum((codes >= 0x4E00) & (codes <= 0x9FFF))))
    lengths = np.array([len(text) for text in lowered])
    ends = np.cumsum(lengths)
    return list((seen[ends] - seen[ends - lengths]) * 3 > lengths)


def _mixed(values: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64's): shingles that share words get unrelated hashes."""
    values = values ^ (values >> np.uint64(30))
    values *= _MIX[0]
    values ^= values >> np.uint64(27)
    values *= _MIX[1]
    return values ^ (values >> np.uint64(31))


def _shingle_hashes(units: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``size`` consecutive units (word hashes or characters) of each text, flat,
    with each text's offsets. A text of fewer units than ``size`` is one shingle (padded with zeros)."""
    padded = [u if len(u) >= size else np.concatenate((u, np.zeros(size - len(u), np.uint64))) for u in units]
    flat = np.concatenate(padded)
    count = len(flat) - size + 1
    combined = flat[:count] * _GRAM_WEIGHTS[-size]
    for k in range(1, size):
        combined += flat[k : k + count] * _GRAM_WEIGHTS[k - size]
    ends = np.cumsum([len(u) for u in padded])
    keep = np.ones(count, dtype=bool)
    for k in range(1, size):  # shingles that would run into the next text
        keep[ends[:-1] - k] = False
    offsets = np.concatenate(([0], np.cumsum([len(u) - size + 1 for u in padded])))
    return _mixed(combined[keep]), offsets


def _minhash_rows(units: list[np.ndarray], size: int) -> list[bytes]:
    hashes, offsets = _shingle_hashes(units, size)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, NUM_PERM, SEED)
    return [row.tobytes() for row in np.array(matrix.to_rows(), dtype=np.uint32)]


def signatures(texts: Sequence[str]) -> list[bytes]:
    """MinHash signature of each text over its word 3-grams, or character 4-grams (spaces left out) when
    the text is mostly Chinese; the same whichever texts it is computed with."""
    if not texts:
        return []
    maybe = [i for i, text in enumerate(texts) if _FROM_FIRST_CJK.search(text)]
    lowered = {i: texts[i].lower() for i in maybe}
    chinese = dict(zip(maybe, _mostly_chinese([lowered[i] for i in maybe]), strict=True)) if maybe else {}
    words_of = _TOKEN_WORDS.__getitem__
    groups: dict[int, list[tuple[int, np.ndarray]]] = {WORD_SHINGLE: [], CHAR_SHINGLE: []}
    for i, text in enumerate(texts):
        if chinese.get(i):
            compact = "".join(lowered[i].split()).encode("utf-32-le")
            groups[CHAR_SHINGLE].append((i, np.frombuffer(compact, dtype=np.uint32).astype(np.uint64)))
        else:
            words = chain.from_iterable(map(words_of, text.split()))  # lower-cased token by token
            groups[WORD_SHINGLE].append((i, np.fromiter(words, dtype=np.uint64)))
    found: list[bytes] = [b""] * len(texts)
    for size, members in groups.items():
        if members:
            for (i, _), row in zip(members, _minhash_rows([u for _, u in members], size), strict=True):
                found[i] = row
    return found


def signature(text: str) -> bytes:
    """MinHash signature of one text (see `signatures`)."""
    return signatures([text])[0]


class NearDuplicateIndex:
    """Remembers kept examples' signatures, band by band (LSH); says whether a new one nearly repeats any.

    The number and width of the bands are datasketch's choice for the threshold (those that minimise its
    false-positive plus false-negative probability; 3 bands of 21 values at 0.9); each band keeps only the set
    of its values seen, which takes less memory than datasketch's own index (BENCHMARKS.md)."""

    def __init__(self, threshold: float) -> None:
        lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        width = 4 * lsh.r  # bytes per band
        self._bands = [slice(i * width, (i + 1) * width) for i in range(lsh.b)]
        self._seen: list[set[bytes]] = [set() for _ in self._bands]

    def seen_before(self, signature: bytes) -> bool:
        """True for a near duplicate; otherwise the example is remembered and False returned."""
        keys = [signature[band] for band in self._bands]
        if any(key in seen for key, seen in zip(keys, self._seen, strict=True)):
            return True
        for key, seen in zip(keys, self._seen, strict=True):
            seen.add(key)
        return False
