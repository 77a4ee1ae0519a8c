"""Access to the bundled synthetic records in ``samples/``.

They let every stage run out of the box, and give a tokenizer study real clinical wording in each
language. They are synthetic, but are handled like patient data all the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from data_prep.config import LANGS
from data_prep.readers import read_clinic_records
from data_prep.records import Record

FREE_TEXT_FIELDS: tuple[str, ...] = (
    "department",
    "complaints",
    "history",
    "diagnosis",
    "recommendations",
)


def bundled_path(lang: str) -> Path:
    """Path of the bundled sample for ``lang`` (``samples/{lang}.jsonl`` inside the package)."""
    if lang not in LANGS:
        raise ValueError(f"no bundled sample for lang={lang!r}; choose one of {', '.join(LANGS)}")
    return Path(str(resources.files("data_prep").joinpath("samples", f"{lang}.jsonl")))


def _record_texts(record: Record) -> Iterator[str]:
    fields = record.fields
    for name in FREE_TEXT_FIELDS:
        if isinstance(fields.get(name), str) and fields[name].strip():
            yield fields[name]
    prescriptions = fields.get("prescriptions") or []
    yield from [prescriptions] if isinstance(prescriptions, str) else prescriptions
    for lab in fields.get("labs") or []:
        yield lab["name"]


def bundled_texts() -> Iterator[str]:
    """Every clinical free-text string of the bundled records, all languages (for tokenizer studies).

    The structured identifier fields (``patient``, ``doctor``) are left out: they are names and
    numbers, not clinical language. Lines that fail to parse are skipped.
    """
    for lang in LANGS:
        path = bundled_path(lang)
        if not path.is_file():
            continue
        for item in read_clinic_records(path):
            if isinstance(item, Record):
                yield from _record_texts(item)


def bundled_example_texts() -> Iterator[str]:
    """The message texts the default tasks make from the bundled records, de-identified.

    Prompts, headings, lab explanations and placeholders are part of every training example; a tokenizer
    trained for the demo must see them too, not only the raw notes.
    """
    from data_prep.deid import deidentify
    from data_prep.tasks import TASKS

    for lang in LANGS:
        path = bundled_path(lang)
        if not path.is_file():
            continue
        for item in read_clinic_records(path):
            if not isinstance(item, Record):
                continue
            record, _ = deidentify(item)
            for name, task in TASKS.items():
                if name == "text":  # the records' own text, already in `bundled_texts`
                    continue
                for example in task(record):
                    yield from (message["content"] for message in example.messages)
