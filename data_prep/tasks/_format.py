"""What a well-formed answer of each task holds, read off its reference answer: the check behind the report's
format-adherence metric.

The tasks write their answers in a fixed shape (`_build`): a structured summary under five headings, a lab
explanation with one line per lab, an ICD-10 answer as `code — diagnosis` (the code alone
where the source gave no diagnosis text), a plain-language retelling that opens
with the diagnosis and closes by sending the patient to their doctor. A tuned model has learnt the task when its
answer keeps that shape; whether its facts are right is what chrF and the other metrics measure.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from data_prep.tasks._build import PLAIN
from data_prep.tasks._phrases import SUMMARY_HEADINGS, WORDS

FormatCheck = Callable[[str], bool]
_ICD10_ANSWER = re.compile(r"^\s*[A-Z]\d{2}(?:\.\d{1,2})?\s*[—–-]\s*\S", re.MULTILINE)
_ICD10_CODE_ONLY = re.compile(r"^\s*[A-Z]\d{2}(?:\.\d{1,2})?\s*$")


def _lab_names(reference: str, lang: str) -> list[str]:
    """The labs a lab explanation must name: those outside their range, or every lab when none is."""
    colon = WORDS[lang]["colon"].strip()
    status = (WORDS[lang]["below"], WORDS[lang]["above"])
    named: list[tuple[str, bool]] = []
    for line in reference.splitlines():
        if line.startswith("- ") and colon in line:
            named.append((line[2:].split(colon, 1)[0].strip(), any(word in line for word in status)))
    abnormal = [name for name, flagged in named if flagged]
    return abnormal or [name for name, _ in named]


def _all_present(markers: list[str]) -> FormatCheck:
    return lambda answer: all(marker in answer for marker in markers)


def format_check(task: str, lang: str, reference: str) -> FormatCheck | None:
    """A test of an answer's shape for `task` in `lang`, given the reference answer; None for tasks without one."""
    if lang not in SUMMARY_HEADINGS:
        return None
    if task == "structured_summary":
        return _all_present(list(SUMMARY_HEADINGS[lang].values()))
    if task == "lab_explanation":
        names = _lab_names(reference, lang)
        return _all_present(names) if names else None
    if task == "icd10_coding":
        if _ICD10_CODE_ONLY.match(reference):  # rows with a code and no diagnosis text are taught the code alone
            return lambda answer: _ICD10_CODE_ONLY.match(answer) is not None
        return lambda answer: _ICD10_ANSWER.search(answer) is not None
    if task == "plain_language":
        lead = PLAIN[lang]["diagnosis"].split("{0}", 1)[0].strip()
        return _all_present([lead, PLAIN[lang]["closing"]])
    return None
