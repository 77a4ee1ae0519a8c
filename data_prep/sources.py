"""The configured sources opened for prepare: the file each reads, the conversion plan of each (its tasks checked
against the format found) and one stream of read items over them all, in order."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from data_prep.config import RECORD_KIND_OF_FORMAT, TASKS_OF_KIND, DataConfig, SourceConfig, default_tasks
from data_prep.convert import Plan
from data_prep.readers import Skip, SourceError, is_coding_row, read_source
from data_prep.records import Record, Reject
from data_prep.samples import bundled_path
from data_prep.tasks import Prompts


def source_path(source: SourceConfig) -> Path:
    """The file a source reads: its own path, or the bundled sample of its language."""
    path = Path(source.path).expanduser() if source.path else bundled_path(source.lang)
    if not path.exists():
        hint = "" if source.path else " (the bundled samples are missing from this installation)"
        raise FileNotFoundError(f"data source for lang={source.lang!r} not found: {path}{hint}")
    return path


def prompts_of(config: DataConfig) -> Prompts:
    """The recipe's prompts (system prompts and task instructions per language) over the built-in ones."""
    return Prompts(system=dict(config.prompts.system), tasks={k: dict(v) for k, v in config.prompts.tasks.items()})


def source_tasks(source: SourceConfig, fmt: str, first: Record | Reject | None = None) -> list[str]:
    """The tasks the source names, else those of its format; complaints with a code and no diagnosis (``first``
    record of the source is such a row) can only teach coding."""
    if source.tasks is not None:
        return list(source.tasks)
    if isinstance(first, Record) and first.kind == "clinical" and is_coding_row(first.fields):
        return ["icd10_coding"]
    return default_tasks(fmt)


def plan_of(
    config: DataConfig, source: SourceConfig, fmt: str, prompts: Prompts, first: Record | Reject | None = None
) -> Plan:
    """How the records of ``source`` (found to be in format ``fmt``, ``first`` its first record) are converted;
    refuses tasks the format cannot feed."""
    tasks = source_tasks(source, fmt, first)
    kind = RECORD_KIND_OF_FORMAT[fmt]
    if wrong := [t for t in tasks if t not in TASKS_OF_KIND[kind]]:
        raise SourceError(
            f"{source.path}: detected format {fmt!r}, to which task(s) {', '.join(wrong)} do not apply; "
            f"choose from {', '.join(TASKS_OF_KIND[kind])}"
        )
    return Plan(
        source_lang=source.lang,
        tasks=tuple(tasks),
        deid=config.deid,
        lang_check=config.quality.lang_check,
        salt=config.patient_salt,
        prompts=prompts,
        near_dup=config.quality.near_dup_threshold is not None,
        entity_types=dict(source.entity_types),
    )


def _counter_of_skips(skipped: Counter[str], unread: Counter[str]) -> Callable[[Skip], None]:
    """What `read_source` calls with each Skip: counted into ``skipped`` (reason (what) → count), or, for parts of
    records left unread, into ``unread``."""

    def count(item: Skip) -> None:
        (unread if item.part else skipped)[f"{item.reason} ({item.what})" if item.what else item.reason] += 1

    return count


def _opened_stream(
    path: Path, fmt: str, stream: Iterator[Record | Reject], skipped: Counter[str]
) -> tuple[Record | Reject, Iterator[Record | Reject]]:
    """The source's first record or reject, and all of them.

    The stream is started here, up to its first record or reject: a source that yields none is a SourceError that
    says what was found (``skipped``, counted so far), before anything is written, never an empty dataset."""
    opened = iter(stream)
    first = next(opened, None)
    if first is None:
        found = ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
        raise SourceError(
            f"{path}: read as {fmt}, it holds no record"
            + (f"; everything in it was skipped on purpose ({found})" if found else "")
            + "; check `path:` and `format:`"
        )
    return first, itertools.chain([first], opened)


def read_all(
    config: DataConfig, prompts: Prompts
) -> tuple[list[Plan], Iterator[tuple[int, Record | Reject]], list[dict[str, Any]]]:
    """Plans per source, one stream of (plan index, item) over every source in order, and the sources described
    for the data card (each source's ``skipped`` counts fill in as its stream is read)."""
    opened = []
    described = []
    for source in config.sources:
        path = source_path(source)
        skipped: Counter[str] = Counter()
        unread: Counter[str] = Counter()
        fmt, stream = read_source(path, source, _counter_of_skips(skipped, unread))
        first, records = _opened_stream(path, fmt, stream, skipped)
        plan = plan_of(config, source, fmt, prompts, first)
        opened.append((plan, records))
        described.append(
            {
                "file": path.name,
                "format": fmt,
                "lang": source.lang,
                "tasks": list(plan.tasks),
                "eval_only": source.eval_only,
                "skipped": skipped,
                "left_unread": unread,
            }
        )
    plans = [plan for plan, _ in opened]

    def items() -> Iterator[tuple[int, Record | Reject]]:
        for index, (_, stream) in enumerate(opened):
            for item in stream:
                yield index, item

    return plans, items(), described
