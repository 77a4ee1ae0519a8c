"""Exact and near-duplicate detection of examples.

Exports repeat themselves: the same discharge note saved twice, a template letter with one date
changed. Exact copies are caught by a hash of the messages; near copies by MinHash signatures over
word (or, for Chinese, character) shingles of the example's own content, with the instruction left
out so that every example of a task does not look alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from functools import lru_cache
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from data_prep.records import ChatExample

NUM_PERM = 64
SCHEME = "affine32"
SEED = 1
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]")


def message_key(example: ChatExample) -> str:
    """Fingerprint of the message list; equal fingerprints mean exact duplicates."""
    blob = json.dumps(example.messages, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def content_text(example: ChatExample, instruction: str | None = None) -> str:
    """The non-system turns, minus the task's instruction: what makes this example this example."""
    parts = []
    for message in example.messages:
        if message["role"] == "system":
            continue
        text = message["content"]
        if instruction and text.startswith(instruction):
            text = text[len(instruction) :]
        parts.append(text)
    return "\n".join(parts)


def shingles(text: str) -> set[bytes]:
    """Word 3-grams, or character 4-grams when the text is mostly Chinese."""
    lowered = text.lower()
    if len(_CJK.findall(lowered)) * 3 > len(lowered):
        compact = "".join(lowered.split())
        return {compact[i : i + 4].encode() for i in range(max(1, len(compact) - 3))}
    words = _WORD.findall(lowered)
    if len(words) < 3:
        return {" ".join(words).encode()}
    return {f"{a} {b} {c}".encode() for a, b, c in zip(words, words[1:], words[2:], strict=False)}


@lru_cache(maxsize=1)
def _permutations() -> Any:
    """Drawing the permutations costs more than hashing a note: draw them once per process (same seed)."""
    return MinHash(num_perm=NUM_PERM, scheme=SCHEME, seed=SEED).permutations


def signature(text: str) -> np.ndarray:
    """MinHash signature (crc32 as the base hash: fast, and the same in every worker process)."""
    minhash = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32, scheme=SCHEME, permutations=_permutations())
    minhash.update_batch(list(shingles(text)))
    return minhash.hashvalues


class NearDuplicateIndex:
    """Remembers kept examples' signatures; says whether a new one nearly repeats any of them."""

    def __init__(self, threshold: float) -> None:
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._count = 0

    def seen_before(self, hashvalues: np.ndarray) -> bool:
        """True for a near duplicate; otherwise the example is remembered and False returned."""
        minhash = LeanMinHash(seed=SEED, hashvalues=hashvalues, scheme=SCHEME)  # the index needs no permutations
        if self._lsh.query(minhash):
            return True
        self._lsh.insert(str(self._count), minhash)
        self._count += 1
        return False
