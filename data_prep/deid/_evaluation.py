"""Scoring de-identification against labelled spans: recall and precision per type and language.

A labelled span counts as found when the detected spans cover every non-space character of it (a
half-redacted name is a leak); a detected span counts as correct when it overlaps a labelled one.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from data_prep.deid._patterns import pattern_detectors
from data_prep.deid._scan import find_spans
from data_prep.deid._spans import AnyDetector, Span, merge_spans


def load_testset(lang: str) -> list[dict[str, Any]]:
    path = Path(str(resources.files("data_prep").joinpath("pii_testset", f"{lang}.jsonl")))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


_LABEL = re.compile(r"⟦(?P<kind>[a-z_]+)\|(?P<text>[^⟧]+)⟧")


def parse_labelled_notes(source: str) -> list[dict[str, Any]]:
    """Notes written with inline labels (``⟦name|Иванов И.И.⟧``), separated by ``---`` lines; ``#`` lines are
    comments. Returns rows of the test-set shape: ``{"id", "text", "spans": [[start, end, kind], ...]}``."""
    lines = [line for line in source.splitlines() if not line.startswith("#")]
    notes = "\n".join(lines).split("\n---\n")
    rows = []
    for number, note in enumerate(n.strip() for n in notes):
        if not note:
            continue
        text, spans, pos = [], [], 0
        for m in _LABEL.finditer(note):
            text.append(note[pos : m.start()])
            start = sum(map(len, text))
            text.append(m.group("text"))
            spans.append([start, start + len(m.group("text")), m.group("kind")])
            pos = m.end()
        text.append(note[pos:])
        joined = "".join(text)
        if "⟦" in joined or "⟧" in joined:
            raise ValueError(f"note {number}: a label is not closed or not of the form ⟦type|text⟧")
        rows.append({"id": f"heldout-{number:03d}", "text": joined, "spans": spans})
    return rows


def load_heldout(lang: str) -> list[dict[str, Any]]:
    """The hand-written held-out notes of ``lang``, written apart from the generated set and the detectors."""
    path = Path(str(resources.files("data_prep").joinpath("pii_testset", f"heldout_{lang}.txt")))
    return parse_labelled_notes(path.read_text(encoding="utf-8"))


def detectors_for(lang: str, ner: bool) -> list[AnyDetector]:
    detectors: list[AnyDetector] = [*pattern_detectors()]
    if ner and lang == "ru":
        from data_prep.deid._ner import natasha_reviewer

        detectors.append(natasha_reviewer())
    return detectors


def score(rows: Iterable[dict[str, Any]], detectors: Sequence[AnyDetector]) -> dict[str, dict[str, float]]:
    """{kind: {gold, found, recall, predicted, correct, precision}} plus ``all``."""
    gold, found, predicted, correct = Counter(), Counter(), Counter(), Counter()
    rows = list(rows)
    for row, row_spans in zip(rows, find_spans([(row["text"], detectors) for row in rows]), strict=True):
        text = row["text"]
        spans = merge_spans(text, row_spans)
        covered = [False] * len(text)
        for span in spans:
            for i in range(span.start, span.end):
                covered[i] = True
        labelled = [Span(s, e, k) for s, e, k in row["spans"]]
        for span in labelled:
            gold[span.kind] += 1
            gold["all"] += 1
            if all(covered[i] or text[i].isspace() for i in range(span.start, span.end)):
                found[span.kind] += 1
                found["all"] += 1
        for span in spans:
            predicted[span.kind] += 1
            predicted["all"] += 1
            if any(span.start < g.end and g.start < span.end for g in labelled):
                correct[span.kind] += 1
                correct["all"] += 1
    kinds = sorted(set(gold) | set(predicted), key=lambda k: (k == "all", k))
    return {
        kind: {
            "gold": gold[kind],
            "found": found[kind],
            "recall": round(found[kind] / gold[kind], 4) if gold[kind] else float("nan"),
            "predicted": predicted[kind],
            "correct": correct[kind],
            "precision": round(correct[kind] / predicted[kind], 4) if predicted[kind] else float("nan"),
        }
        for kind in kinds
    }
