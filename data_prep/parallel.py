"""Conversion (language check, de-identification, tasks, measurements) in this process or in ``data.workers``
forked processes, a chunk of read items at a time; outcomes come back in input order, whatever the number of
workers, and each process spools the example lines it makes (see `data_prep.spool`)."""

from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from data_prep.convert import Converted, Plan, convert_records
from data_prep.langid import detector
from data_prep.records import Record, Reject
from data_prep.spool import spool_lines

MessagesTokenCounter = Callable[[list[dict[str, str]]], int]
"""A message list → its length in tokens as the model will see it (chat template applied)."""
CHUNK = 128
"""Read items converted together (one task of a worker)."""

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
    spool_lines(converted, _WORKER_STATE["out_dir"])
    done = iter(converted)
    outcomes = [(i, item if isinstance(item, Reject) else next(done)) for i, item in chunk]
    # see `converted_in_order`: in a worker, its word memos and the models stay out of the collector's scans
    gc.freeze()
    return outcomes


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


def converted_in_order(
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
    collections would otherwise rescan all of it, a large share of this process's time on a big export, and
    in forked workers they would also copy the shared pages they touch.
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
