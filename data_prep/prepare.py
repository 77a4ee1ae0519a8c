"""Run the whole preparation: read → de-identify → tasks → quality → split → files and data card.

This is the only module here that touches the file system for output; every stage it calls is a
pure function, so each can be tested, replaced or run elsewhere on its own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from data_prep.card import RecordOutcome, build_card, render_markdown
from data_prep.config import DataConfig, SourceConfig
from data_prep.deid import STRUCTURED_IDENTIFIERS, deidentify
from data_prep.quality import filter_examples
from data_prep.readers import READERS
from data_prep.records import ChatExample, Record, Reject, pseudonymize
from data_prep.samples import bundled_path
from data_prep.split import SPLITS, split_by_patient
from data_prep.tasks import TASKS

MessagesTokenCounter = Callable[[list[dict[str, str]]], int]
OUTPUT_FILES: tuple[str, ...] = (
    *(f"{split}.jsonl" for split in SPLITS),
    "rejects.jsonl",
    "data_card.json",
    "data_card.md",
)


def source_path(source: SourceConfig) -> Path:
    """The file a source reads: its own path, or the bundled sample of its language."""
    path = Path(source.path).expanduser() if source.path else bundled_path(source.lang)
    if not path.is_file():
        hint = "" if source.path else " (the bundled samples are missing from this installation)"
        raise FileNotFoundError(f"data source for lang={source.lang!r} not found: {path}{hint}")
    return path


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line (UTF-8, not escaped); returns the number of lines."""
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def _strip_identifiers(record: Record) -> Record:
    """Without de-identification, the structured identifiers are still never needed downstream."""
    return replace(record, fields={k: v for k, v in record.fields.items() if k not in STRUCTURED_IDENTIFIERS})


@dataclass
class _Converted:
    """What reading, de-identifying and the tasks made of the sources."""

    records_read: int = 0
    outcomes: list[RecordOutcome] = field(default_factory=list)
    record_rejects: list[Reject] = field(default_factory=list)
    examples: list[ChatExample] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)


def _convert(config: DataConfig, sources: list[tuple[SourceConfig, Path]]) -> _Converted:
    """Records → de-identified records → examples, keeping the fate of every record read."""
    done = _Converted()
    for source, path in sources:
        for item in READERS[source.format](path, lang=source.lang):
            done.records_read += 1
            if isinstance(item, Record) and item.lang != source.lang:
                item = Reject(item.source, item.location, "lang_mismatch", "lang")
            if isinstance(item, Reject):
                done.record_rejects.append(item)
                done.outcomes.append(RecordOutcome(item.source, source.lang, item.reason))
                continue
            record = pseudonymize(item, config.patient_salt)
            if config.deid.enabled:
                record, counts = deidentify(record)
                done.redactions.update(counts)
            else:
                record = _strip_identifiers(record)
            done.outcomes.append(RecordOutcome(record.source, record.lang))
            for task in source.tasks:
                done.examples.extend(TASKS[task](record))
    return done


def prepare(config: DataConfig, out_dir: Path, token_counter: MessagesTokenCounter | None = None) -> dict:
    """Prepare the dataset described by ``config`` into ``out_dir``; returns the data card.

    Writes ``{train,validation,test}.jsonl`` (``{"messages", "meta"}`` per line), ``rejects.jsonl``
    (where and why, no patient text), ``data_card.json`` and ``data_card.md``. ``token_counter``
    gets a message list and returns its length in tokens as the model will see it (chat template
    applied); with it, ``quality.max_tokens`` is enforced and lengths are reported in tokens.
    """
    out_dir = Path(out_dir)
    sources = [(source, source_path(source)) for source in config.sources]
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = _convert(config, sources)

    token_counts: dict[int, int] = {}

    def count_tokens(example: ChatExample) -> int:
        """Each example is measured once, however many stages ask."""
        key = id(example)
        if key not in token_counts:
            token_counts[key] = token_counter(example.messages)  # type: ignore[misc]
        return token_counts[key]

    length_of = count_tokens if token_counter is not None else None
    kept, rejected = filter_examples(converted.examples, config.quality, length_of)
    splits = split_by_patient(kept, config.split.validation, config.split.test, config.split.seed)

    written = {}
    for split in SPLITS:
        written[split] = _write_jsonl(out_dir / f"{split}.jsonl", (e.to_json() for e in splits[split]))
    rejects = [r.to_json() for r in converted.record_rejects] + [r.to_json() for _, r in rejected]
    _write_jsonl(out_dir / "rejects.jsonl", rejects)
    card = build_card(
        config=config,
        outcomes=converted.outcomes,
        records_read=converted.records_read,
        made=converted.examples,
        rejected=rejected,
        splits=splits,
        written=written,
        redactions=converted.redactions,
        length_of=length_of,
    )
    card_json = json.dumps(card, ensure_ascii=False, indent=2) + "\n"
    (out_dir / "data_card.json").write_text(card_json, encoding="utf-8")
    (out_dir / "data_card.md").write_text(render_markdown(card), encoding="utf-8")
    return card
