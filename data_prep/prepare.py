"""Run the whole preparation: read → de-identify → tasks → quality → split → files and data card.

This is the only module here that touches the file system for output. Records stream through: the
converted examples are spooled to disk and only their small facts (patient group, language, task,
length) stay in memory until the split is known, so an export larger than memory can be prepared.
Conversion (language check, de-identification, tasks, measurements) runs in ``data.workers``
processes, each writing the example lines it makes to its own spool file in the output directory (only
their places travel back); the order of the output does not depend on how many.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import sys
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from data_prep.card import ExampleStub, RecordOutcome, build_card, fertility, render_markdown
from data_prep.config import (
    RECORD_KIND_OF_FORMAT,
    TASKS_OF_KIND,
    DataConfig,
    SourceConfig,
    default_tasks,
    path_overlap,
)
from data_prep.convert import Converted, Made, Plan, convert_records
from data_prep.langid import detector
from data_prep.quality import QualityGate, example_reject
from data_prep.readers import SourceError, read_source
from data_prep.records import ChatExample, Record, Reject
from data_prep.samples import bundled_path
from data_prep.split import SPLITS, assign_groups
from data_prep.tasks import Prompts

MessagesTokenCounter = Callable[[list[dict[str, str]]], int]
MARKER_NAME = ".medtune-prepare.json"
"""Lists the files prepare writes in a folder: those, and only those, a later prepare may replace."""
WRITTEN_BY = "medtune prepare"
OUTPUT_FILES: tuple[str, ...] = (
    *(f"{split}.jsonl" for split in SPLITS),
    "eval_only.jsonl",
    "rejects.jsonl",
    "data_card.json",
    "data_card.md",
    MARKER_NAME,
)
CHUNK = 128
FERTILITY_SAMPLE = 200


def source_path(source: SourceConfig) -> Path:
    """The file a source reads: its own path, or the bundled sample of its language."""
    path = Path(source.path).expanduser() if source.path else bundled_path(source.lang)
    if not path.exists():
        hint = "" if source.path else " (the bundled samples are missing from this installation)"
        raise FileNotFoundError(f"data source for lang={source.lang!r} not found: {path}{hint}")
    return path


def prompts_of(config: DataConfig) -> Prompts:
    return Prompts(system=dict(config.prompts.system), tasks={k: dict(v) for k, v in config.prompts.tasks.items()})


def _plan(config: DataConfig, source: SourceConfig, fmt: str, prompts: Prompts) -> Plan:
    tasks = source.tasks if source.tasks is not None else default_tasks(fmt)
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


# --- conversion, in this process or in workers ----------------------------------------------------

_WORKER_STATE: dict[str, Any] = {}


def _convert_chunk(chunk: list[tuple[int, Record]]) -> list[Converted]:
    plans, counter = _WORKER_STATE["plans"], _WORKER_STATE["token_counter"]
    return convert_records([(record, plans[i]) for i, record in chunk], counter)


def _chunks(items: Iterable[tuple[int, Record | Reject]]) -> Iterator[list[tuple[int, Record | Reject]]]:
    chunk: list[tuple[int, Record | Reject]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _convert_mixed(chunk: list[tuple[int, Record | Reject]]) -> list[tuple[int, Reject | Converted]]:
    """Read rejects pass through; records are converted (in whichever process runs this), their examples'
    lines written to this process's spool file."""
    records = [(i, item) for i, item in chunk if isinstance(item, Record)]
    converted = _convert_chunk(records)  # type: ignore[arg-type]
    _spool_lines(converted)
    done = iter(converted)
    outcomes = [(i, item if isinstance(item, Reject) else next(done)) for i, item in chunk]
    gc.freeze()  # see `_converted`: in a worker, its word memos and the models stay out of the collector's scans
    return outcomes


SPOOL_PREFIX = ".examples."
_SPOOLS: dict[tuple[int, str], BinaryIO] = {}
"""Open spool files by (process id, output directory)."""


def _spool_path(out_dir: Path, pid: int) -> Path:
    return out_dir / f"{SPOOL_PREFIX}{pid}.spool"


def _spool_lines(converted: list[Converted]) -> None:
    """Write the examples' lines to this process's spool file, one write per chunk, and leave in their place
    where they went (`Made.at`): the main process copies them into the split files at the end, so the
    lines never cross between processes."""
    lines = [made.line for outcome in converted for made in outcome.made]
    if not lines:
        return
    pid, out_dir = os.getpid(), _WORKER_STATE["out_dir"]
    spool = _SPOOLS.get((pid, str(out_dir)))
    if spool is None:
        spool = _SPOOLS[(pid, str(out_dir))] = _spool_path(out_dir, pid).open("ab")
    offset = spool.tell()
    spool.write(b"".join(lines))
    spool.flush()  # the main process may read a line back before this process ends
    for outcome in converted:
        for k, (stub, line, key, answer_chars, minhash, _) in enumerate(outcome.made):
            outcome.made[k] = Made(stub, b"", key, answer_chars, minhash, (pid, offset, len(line)))
            offset += len(line)


def _close_spools(out_dir: Path) -> None:
    """Close this process's spool files for ``out_dir`` and remove every process's."""
    for key in [key for key in _SPOOLS if key[1] == str(out_dir)]:
        _SPOOLS.pop(key).close()
    for path in out_dir.glob(f"{SPOOL_PREFIX}*.spool"):
        path.unlink(missing_ok=True)


class _SpooledLines:
    """Reads example lines back from the spool files by their place (`Made.at`)."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._files: dict[int, BinaryIO] = {}

    def _file(self, pid: int) -> BinaryIO:
        if pid not in self._files:
            self._files[pid] = _spool_path(self._out_dir, pid).open("rb", buffering=1 << 20)
        return self._files[pid]

    def line(self, at: tuple[int, int, int]) -> bytes:
        """One line, from a spool file that may still be growing."""
        pid, offset, length = at
        return os.pread(self._file(pid).fileno(), length, offset)

    def next_line(self, at: tuple[int, int, int]) -> bytes:
        """One line, once the spool files are complete; cheapest when each file is read in order of its
        offsets, as the split copies them (a seek within the buffer reads nothing)."""
        pid, offset, length = at
        handle = self._file(pid)
        handle.seek(offset)
        return handle.read(length)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


def _one_blas_thread() -> None:
    """Each worker owns one core: BLAS thread pools inherited across fork (natasha's NER runs on numpy) would
    otherwise spin against each other and make two workers slower than one process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _load_models(plans: list[Plan]) -> None:
    """Load lingua's and natasha's models before forking: the workers then share one copy instead of each
    loading its own."""
    if any(plan.lang_check != "off" or plan.source_lang == "auto" for plan in plans):
        detector()
    if any(plan.deid.enabled and plan.deid.ner and plan.source_lang in ("ru", "auto") for plan in plans):
        from data_prep.deid import load_model

        load_model()


def _converted(
    items: Iterable[tuple[int, Record | Reject]],
    plans: list[Plan],
    token_counter: MessagesTokenCounter | None,
    workers: int,
    out_dir: Path,
) -> Iterator[tuple[int, Reject | Converted]]:
    """(source index, outcome) of each read item in input order; a bounded number of chunks in flight,
    so reading never runs far ahead of conversion.

    What has outlived a chunk (the models, the tallies, the near-duplicate index) is then frozen out of
    the cyclic garbage collector's scans (`gc.freeze`; the caller unfreezes at the end): its full
    collections would otherwise rescan all of it, about a third of this process's time on 40,000 notes,
    and in forked workers they would also copy the shared pages they touch.
    """
    _WORKER_STATE.update(plans=plans, token_counter=token_counter, out_dir=out_dir)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in _chunks(items):
            yield from _convert_mixed(chunk)
        return
    _load_models(plans)
    gc.freeze()
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_one_blas_thread)
    pending: deque[Any] = deque()
    try:
        for chunk in _chunks(items):
            pending.append(pool.apply_async(_convert_mixed, (chunk,)))
            if len(pending) >= 4 * workers:
                yield from pending.popleft().get()
                gc.freeze()
        while pending:
            yield from pending.popleft().get()
    finally:
        pool.terminate()
        pool.join()


# --- bookkeeping ----------------------------------------------------------------------------------


@dataclass
class _Tally:
    """What the run observed, in the small form the card and the split need."""

    records_read: int = 0
    outcomes: list[RecordOutcome] = field(default_factory=list)
    record_rejects: int = 0
    made: list[ExampleStub] = field(default_factory=list)
    rejected: list[tuple[ExampleStub, Reject]] = field(default_factory=list)
    kept: list[ExampleStub] = field(default_factory=list)
    kept_at: array[int] = field(default_factory=lambda: array("q"))
    """Where each kept example's line is: its `Made.at`, three numbers after another (24 bytes an example)."""
    redactions: Counter[str] = field(default_factory=Counter)
    fertility_sample: dict[str, list[str]] = field(default_factory=dict)


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


def _progress(total_hint: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=f"preparing {total_hint}", unit=" records", file=sys.stderr, dynamic_ncols=True)


def _read_all(config: DataConfig, prompts: Prompts) -> tuple[list[Plan], Iterator[tuple[int, Record | Reject]], list]:
    """Plans per source and one stream of (plan index, item) over every source in order."""
    opened = []
    for source in config.sources:
        path = source_path(source)
        fmt, stream = read_source(path, source)
        opened.append((fmt, _plan(config, source, fmt, prompts), stream, source, path))
    plans = [plan for _, plan, _, _, _ in opened]

    def items() -> Iterator[tuple[int, Record | Reject]]:
        for index, (_, _, stream, _, _) in enumerate(opened):
            for item in stream:
                yield index, item

    described = [
        {
            "file": path.name,
            "format": fmt,
            "lang": source.lang,
            "tasks": list(plan.tasks),
            "eval_only": source.eval_only,
        }
        for fmt, plan, _, source, path in opened
    ]
    return plans, items(), described


# --- the output folder ----------------------------------------------------------------------------


class OutputError(ValueError):
    """An output folder prepare must not write to; the message names the path and how to fix it."""


def _json_or_none(path: Path) -> Any:
    """The JSON in a plain file, or None when it is missing, a link or not JSON."""
    try:
        return None if path.is_symlink() else json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _earlier_outputs(out_dir: Path) -> set[str]:
    """Names of the files an earlier prepare wrote in ``out_dir``, from its marker; a folder prepared before
    markers existed is vouched for by its medtune data card."""
    if os.path.lexists(out_dir / MARKER_NAME):
        record = _json_or_none(out_dir / MARKER_NAME)
        ours = isinstance(record, dict) and record.get("written_by") == WRITTEN_BY
        if not ours or not isinstance(record.get("files"), list):
            return set()
        return {name for name in record["files"] if name in OUTPUT_FILES} | {MARKER_NAME}
    card = _json_or_none(out_dir / "data_card.json")
    if isinstance(card, dict) and {"records", "examples", "splits", "invariants"} <= set(card):
        return set(OUTPUT_FILES) - {MARKER_NAME}
    return set()


def _check_is_a_folder(out_dir: Path) -> None:
    """``out_dir`` is a folder, or can be made: neither it nor a parent is a file."""
    for folder in (out_dir, *out_dir.parents):
        if os.path.lexists(folder):
            if folder.is_dir():
                return
            where = "is a file" if folder == out_dir else f"cannot be made: {folder} is a file"
            raise OutputError(f"output folder {out_dir} {where}, not a folder; name a folder for the prepared "
                              f"data, e.g. {out_dir.parent / 'prepared'}")


def check_output_dir(config: DataConfig, out_dir: Path) -> list[Path]:
    """Refuse, before anything is read or written, an output folder that overlaps a source or holds a file at an
    output path that no earlier prepare wrote; returns the files of an earlier prepare this run replaces."""
    out_dir = Path(out_dir)
    for source in config.sources:
        if source.path is not None and (overlap := path_overlap(source_path(source), out_dir)):
            raise OutputError(f"{overlap}: prepare would write over or re-read the export; choose an output "
                              "folder that holds no source (--out, or output_dir in a recipe)")
    _check_is_a_folder(out_dir)
    if not out_dir.is_dir():
        return []
    earlier = _earlier_outputs(out_dir)
    existing = [out_dir / name for name in OUTPUT_FILES if os.path.lexists(out_dir / name)]
    foreign = [p for p in existing if p.name not in earlier or p.is_symlink() or not p.is_file()]
    if foreign:
        raise OutputError(
            f"output folder {out_dir} already holds {', '.join(p.name for p in foreign)}, not written by an earlier "
            f"prepare (none recorded in {MARKER_NAME}); nothing was written: move those files away or choose "
            "another output folder"
        )
    return [p for p in existing if p.name != MARKER_NAME]


def _write_marker(out_dir: Path) -> None:
    """Record the outputs before writing any, so a run that is stopped half-way can still be redone."""
    record = {"written_by": WRITTEN_BY, "files": list(OUTPUT_FILES)}
    (out_dir / MARKER_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def prepare(
    config: DataConfig,
    out_dir: Path,
    token_counter: MessagesTokenCounter | None = None,
    *,
    progress: bool = False,
) -> dict:
    """Prepare the dataset described by ``config`` into ``out_dir``; returns the data card.

    Writes ``{train,validation,test}.jsonl`` (``{"messages", "meta"}`` per line), ``eval_only.jsonl``
    (questions without an answer key), ``rejects.jsonl`` (where and why, no patient text),
    ``data_card.json``, ``data_card.md`` and ``MARKER_NAME``. ``token_counter`` gets a message list and returns its
    length in tokens as the model will see it (chat template applied); with it, ``quality.max_tokens``
    is enforced, lengths are reported in tokens and the tokenizer's fertility is measured.
    Raises SourceError (a ValueError) when a whole source cannot be read as configured, and OutputError (a
    ValueError), with nothing written, for an output folder that overlaps a source or holds files at output paths
    that no earlier prepare wrote (see `check_output_dir`); an earlier prepare's outputs are replaced.
    """
    out_dir = Path(out_dir)
    check_output_dir(config, out_dir)
    prompts = prompts_of(config)
    plans, items, described = _read_all(config, prompts)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(out_dir)
    gate = QualityGate(config.quality)
    tally = _Tally()
    _close_spools(out_dir)  # any left by a run that was killed
    spooled = _SpooledLines(out_dir)
    bar = _progress(f"{len(plans)} source(s)", progress)
    try:
        with (out_dir / "rejects.jsonl.tmp").open("w", encoding="utf-8") as rejects:
            for plan_index, outcome in _converted(items, plans, token_counter, config.workers, out_dir):
                tally.records_read += 1
                if bar is not None:
                    bar.update(1)
                if isinstance(outcome, Reject):
                    lang = plans[plan_index].source_lang
                    tally.outcomes.append(
                        RecordOutcome(outcome.source, lang if lang != "auto" else "unknown", outcome.reason)
                    )
                    rejects.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
                    continue
                redactions = tally.redactions
                for kind, count in outcome.redactions.items():  # (Counter.update of a dict runs in Python anyway)
                    redactions[kind] += count
                if outcome.reject is not None:
                    tally.outcomes.append(RecordOutcome(outcome.reject.source, outcome.lang, outcome.reject.reason))
                    rejects.write(json.dumps(outcome.reject.to_json(), ensure_ascii=False) + "\n")
                    continue
                source_name = outcome.made[0].stub.meta["source"].rsplit(":", 1)[0]
                tally.outcomes.append(RecordOutcome(source_name, outcome.lang))
                for made in outcome.made:
                    stub = made.stub
                    tally.made.append(stub)
                    length = stub.length if token_counter is not None else None
                    reason = gate.judge(stub.meta["task"], made.answer_chars, length, made.key, made.minhash)
                    if reason is not None:
                        reject = example_reject(stub.meta, reason)
                        tally.rejected.append((stub, reject))
                        rejects.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
                        continue
                    tally.kept.append(stub)
                    tally.kept_at.extend(made.at)  # type: ignore[arg-type]
                    sample = tally.fertility_sample.setdefault(stub.meta["lang"], [])
                    if len(sample) < FERTILITY_SAMPLE:
                        messages = json.loads(spooled.line(made.at))["messages"]  # type: ignore[arg-type]
                        sample.extend(m["content"] for m in messages if m["role"] != "system")
        (out_dir / "rejects.jsonl.tmp").replace(out_dir / "rejects.jsonl")
        splits, written = _write_splits(config, out_dir, spooled, tally.kept, tally.kept_at)
    finally:
        gc.unfreeze()
        if bar is not None:
            bar.close()
        spooled.close()
        _close_spools(out_dir)
        (out_dir / "rejects.jsonl.tmp").unlink(missing_ok=True)
    card = build_card(
        config=config,
        outcomes=tally.outcomes,
        records_read=tally.records_read,
        made=tally.made,
        rejected=tally.rejected,
        splits=splits,
        written=written,
        redactions=tally.redactions,
        length_of=lambda stub: stub.length,
        length_unit="tokens" if token_counter is not None else "chars",
        fertility=fertility(tally.fertility_sample, token_counter) if token_counter is not None else None,
        sources=described,
    )
    card_json = json.dumps(card, ensure_ascii=False, indent=2) + "\n"
    (out_dir / "data_card.json").write_text(card_json, encoding="utf-8")
    (out_dir / "data_card.md").write_text(render_markdown(card), encoding="utf-8")
    return card


def _write_splits(
    config: DataConfig,
    out_dir: Path,
    spooled: _SpooledLines,
    kept: list[ExampleStub],
    kept_at: array[int],
) -> tuple[dict[str, list[ExampleStub]], dict[str, int]]:
    """Assign patients to splits, then copy each spooled example into its split's file."""
    answered = [s for s in kept if s.answered]
    assignment = assign_groups(
        ((s.meta["group"], s.meta["lang"], s.meta["task"], bool(s.meta.get("eval_only"))) for s in answered),
        config.split.validation,
        config.split.test,
        config.split.seed,
    )
    names = (*SPLITS, "eval_only")
    splits: dict[str, list[ExampleStub]] = {name: [] for name in names}
    handles = {name: (out_dir / f"{name}.jsonl.tmp").open("wb") for name in names}
    try:
        places = zip(kept_at[0::3], kept_at[1::3], kept_at[2::3], strict=True)
        for stub, at in zip(kept, places, strict=True):  # UTF-8 lines copied as they are
            name = assignment[stub.meta["group"]] if stub.answered else "eval_only"
            splits[name].append(stub)
            handles[name].write(spooled.next_line(at))
    finally:
        for handle in handles.values():
            handle.close()
    for name in names:
        (out_dir / f"{name}.jsonl.tmp").replace(out_dir / f"{name}.jsonl")
    return splits, {name: len(splits[name]) for name in names}


def preview(config: DataConfig, limit: int) -> list[ChatExample]:
    """The first ``limit`` examples the sources make (de-identified, unfiltered); nothing is written."""
    prompts = prompts_of(config)
    plans, items, _ = _read_all(config, prompts)
    shown: list[ChatExample] = []
    for plan_index, item in items:
        if isinstance(item, Reject):
            continue
        shown.extend(made.example() for made in convert_records([(item, plans[plan_index])])[0].made)
        if len(shown) >= limit:
            break
    return shown[:limit]
