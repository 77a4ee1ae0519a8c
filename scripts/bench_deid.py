"""Recall and precision of de-identification per PII type and language on the labelled test set.

    python scripts/bench_deid.py
    python scripts/bench_deid.py --gold runs/NAME/studio/reviewed/ru.jsonl   # the clinic's own reviewed notes

Prints, per language, each type's labelled count and recall/precision with the pattern layer only
and with natasha's NER added, side by side, plus milliseconds per note; then the targets (recall
≥ 99% for IDs, phones and e-mails, ≥ 95% for names, precision ≥ 90%) and whether they are met.
The test set is data_prep/pii_testset/{ru,kk,zh}.jsonl (regenerate: python -m data_prep.pii_testset.build);
the hand-written held-out notes, labelled inline, are data_prep/pii_testset/heldout_{ru,kk,zh}.txt.
`--gold FILE` scores a labelled set in the same JSON Lines format instead, e.g. the notes reviewed in
`medtune studio` (its language from `--lang` or the file's name, ru.jsonl).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from data_prep.deid import detectors_for, load_heldout, load_testset, score

ID_TYPES = ("iin", "snils", "inn", "oms", "passport", "resident_id", "mrn", "phone", "email")


def _fmt(value: float) -> str:
    return "   -  " if value != value else f"{100 * value:5.1f}%"


def report(title: str, lang: str, rows: list[dict]) -> bool:
    """Print one table (patterns only vs with natasha) and say whether the targets are met with natasha."""
    met = True
    results, timings = {}, {}
    for ner in (False, True):
        detectors = detectors_for(lang, ner)
        if ner:
            score(rows[:2], detectors)  # load the model outside the timing
        start = time.perf_counter()
        results[ner] = score(rows, detectors)
        timings[ner] = 1000 * (time.perf_counter() - start) / len(rows)
    print(f"\n{lang}, {title}: {len(rows)} notes, {results[False]['all']['gold']} labelled spans")
    print(f"{'type':12} {'gold':>5} | {'recall':>7} {'prec.':>7} (patterns) | {'recall':>7} {'prec.':>7} (+natasha)")
    for kind in results[True]:
        a, b = results[False].get(kind, {}), results[True][kind]
        print(
            f"{kind:12} {b['gold']:5d} | {_fmt(a.get('recall', float('nan'))):>7} "
            f"{_fmt(a.get('precision', float('nan'))):>7}            | "
            f"{_fmt(b['recall']):>7} {_fmt(b['precision']):>7}"
        )
        if kind == "all":
            continue
        target = 0.99 if kind in ID_TYPES else 0.95 if kind == "name" else 0.0
        if (b["gold"] and b["recall"] < target) or (b["predicted"] and b["precision"] < 0.90):
            met = False
    print(
        f"ms per note: patterns {timings[False]:.2f}, +natasha {timings[True]:.2f} "
        f"(ratio {timings[True] / timings[False]:.1f}x)"
    )
    return met


def score_gold(path: Path, lang: str | None) -> None:
    """Score one labelled set (`{"id", "text", "spans": [[start, end, kind], ...]}` per line)."""
    lang = lang or path.stem
    if lang not in ("ru", "kk", "zh", "en"):
        raise SystemExit(f"--gold {path}: say its language with --lang (ru, kk, zh or en)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"--gold {path}: no labelled notes in it")
    met = report(f"labelled set {path.name}", lang, rows)
    print(f"\ntargets (recall ≥99% IDs/phones/e-mails, ≥95% names, precision ≥90%, with natasha): "
          f"{'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", type=Path, help="a labelled set in the PII test set's format to score instead")
    parser.add_argument("--lang", default=None, help="language of --gold (default: its file name, e.g. ru.jsonl)")
    args = parser.parse_args()
    if args.gold is not None:
        score_gold(args.gold, args.lang)
        return
    met = {"generated": True, "held-out": True}
    for lang in ("ru", "kk", "zh"):
        met["generated"] &= report("generated set", lang, load_testset(lang))
        met["held-out"] &= report("hand-written held-out notes", lang, load_heldout(lang))
    print("\ntargets (recall ≥99% IDs/phones/e-mails, ≥95% names, precision ≥90%, with natasha):")
    for name, ok in met.items():
        print(f"  {name}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
