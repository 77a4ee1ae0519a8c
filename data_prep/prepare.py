"""Run the whole preparation: read → de-identify → tasks → quality → split → files and data card.

This is the only module here that writes prepare's outputs. Records stream through: the converted examples
are spooled to disk and only their small facts (patient group, language, task, length) stay in memory until
the split is known, so an export larger than memory can be prepared. Conversion (language check,
de-identification, tasks, measurements) runs in ``data.workers`` processes, each writing the example lines it
makes to its own spool file in the output directory (only their places travel back); the order of the output
does not depend on how many.
"""

from __future__ import annotations

import gc
import json
import sys
from array import array
from pathlib import Path
from typing import Any

from data_prep.card import ExampleStub, build_card, fertility
from data_prep.card_markdown import render_markdown
from data_prep.config import DataConfig
from data_prep.convert import convert_records
from data_prep.output_folder import MARKER_NAME, OUTPUT_FILES, OutputError, check_output_dir, write_marker
from data_prep.parallel import CHUNK, MessagesTokenCounter, converted_in_order
from data_prep.quality import QualityGate
from data_prep.records import ChatExample, Reject
from data_prep.sources import prompts_of, read_all, source_path
from data_prep.split import SPLITS, assign_groups
from data_prep.spool import SpooledLines, close_spools
from data_prep.tally import Intake, Tally
from data_prep.tasks import prompt_only as prompt_only_line

PROMPT_ONLY_SPLITS = ("train", "validation")
"""What GRPO samples answers for; the test split keeps its answers for the before/after evaluation."""

__all__ = [
    "CHUNK",
    "MARKER_NAME",
    "OUTPUT_FILES",
    "MessagesTokenCounter",
    "OutputError",
    "check_output_dir",
    "prepare",
    "preview",
    "prompts_of",
    "source_path",
]


def prepare(
    config: DataConfig,
    out_dir: Path,
    token_counter: MessagesTokenCounter | None = None,
    *,
    progress: bool = False,
    prompt_only: bool = False,
) -> dict:
    """Prepare the dataset described by ``config`` into ``out_dir``; returns the data card.

    Writes ``{train,validation,test}.jsonl`` (``{"messages", "meta"}`` per line), ``eval_only.jsonl``
    (questions without an answer key), ``rejects.jsonl`` (where and why, no patient text),
    ``data_card.json``, ``data_card.md`` and ``MARKER_NAME``. ``token_counter`` gets a message list and returns its
    length in tokens as the model will see it (chat template applied); with it, ``quality.max_tokens``
    is enforced, lengths are reported in tokens and the tokenizer's fertility is measured.
    With ``prompt_only`` (GRPO), train and validation lines are written without their answer turns (the
    reference stays in ``meta.reference``); test keeps its answers for the evaluation.
    Raises SourceError (a ValueError) when a whole source cannot be read as configured, and OutputError (a
    ValueError), with nothing written, for an output folder that overlaps a source or holds files at output paths
    that no earlier prepare wrote (see `check_output_dir`); an earlier prepare's outputs are replaced.
    """
    out_dir = Path(out_dir)
    check_output_dir(config, out_dir)
    prompts = prompts_of(config)
    plans, items, described = read_all(config, prompts)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_marker(out_dir)
    gate = QualityGate(config.quality)
    tally = Tally()
    close_spools(out_dir)  # any left by a run that was killed
    spooled = SpooledLines(out_dir)
    bar = _progress(f"{len(plans)} source(s)", progress)
    try:
        with (out_dir / "rejects.jsonl.tmp").open("w", encoding="utf-8") as rejects:
            intake = Intake(tally, gate, token_counter, spooled, rejects)
            for plan_index, outcome in converted_in_order(items, plans, token_counter, config.workers, out_dir):
                if bar is not None:
                    bar.update(1)
                intake.take(outcome, plans[plan_index].source_lang)
        (out_dir / "rejects.jsonl.tmp").replace(out_dir / "rejects.jsonl")
        splits, written = _write_splits(config, out_dir, spooled, tally.kept, tally.kept_at, prompt_only)
    finally:
        gc.unfreeze()
        if bar is not None:
            bar.close()
        spooled.close()
        close_spools(out_dir)
        (out_dir / "rejects.jsonl.tmp").unlink(missing_ok=True)
    card = _data_card(config, tally, splits, written, token_counter, described)
    _write_card(out_dir, card)
    return card


def _progress(total_hint: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=f"preparing {total_hint}", unit=" records", file=sys.stderr, dynamic_ncols=True)


def _write_splits(
    config: DataConfig,
    out_dir: Path,
    spooled: SpooledLines,
    kept: list[ExampleStub],
    kept_at: array[int],
    prompt_only: bool = False,
) -> tuple[dict[str, list[ExampleStub]], dict[str, int]]:
    """Assign patients to splits, then copy each spooled example into its split's file (train and validation
    without answers when ``prompt_only``)."""
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
            line = spooled.next_line(at)
            handles[name].write(prompt_only_line(line) if prompt_only and name in PROMPT_ONLY_SPLITS else line)
    finally:
        for handle in handles.values():
            handle.close()
    for name in names:
        (out_dir / f"{name}.jsonl.tmp").replace(out_dir / f"{name}.jsonl")
    return splits, {name: len(splits[name]) for name in names}


def _data_card(
    config: DataConfig,
    tally: Tally,
    splits: dict[str, list[ExampleStub]],
    written: dict[str, int],
    token_counter: MessagesTokenCounter | None,
    described: list[dict[str, Any]],
) -> dict:
    """The data card of the run: what was read, made, rejected and written, lengths in tokens where they can be."""
    return build_card(
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


def _write_card(out_dir: Path, card: dict) -> None:
    card_json = json.dumps(card, ensure_ascii=False, indent=2) + "\n"
    (out_dir / "data_card.json").write_text(card_json, encoding="utf-8")
    (out_dir / "data_card.md").write_text(render_markdown(card), encoding="utf-8")


def preview(config: DataConfig, limit: int) -> list[ChatExample]:
    """The first ``limit`` examples the sources make (de-identified, unfiltered); nothing is written."""
    prompts = prompts_of(config)
    plans, items, _ = read_all(config, prompts)
    shown: list[ChatExample] = []
    for plan_index, item in items:
        if isinstance(item, Reject):
            continue
        shown.extend(made.example() for made in convert_records([(item, plans[plan_index])])[0].made)
        if len(shown) >= limit:
            break
    return shown[:limit]
