"""Continued pretraining: raw text rows (`{"text": …, "meta": …}`, prepared with `tasks: [text]`) trained with
the causal LM loss on every token, through the same trainer, guards, checkpoints and adapter writing as SFT.

Only what differs lives here: reading text rows, and TRL's settings for them. Rows are packed with
best-fit-decreasing and a text longer than `train.max_length` is split across rows rather than cut (TRL's
`bfd_split`), so no token of a long note is lost; positions restart and attention stops at every text boundary,
as in packed SFT. Validation rows are packed the same way, so the held-out loss covers every token too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from finetune.train._data import TrainingDataError, split_lines

TEXT_FIELD = "text"


def load_text_rows(path: Path) -> Dataset:
    """The split as a dataset with one `text` column; a row without a non-empty string `text` names its line."""
    texts: list[str] = []
    for where, record in split_lines(path):
        if not isinstance(record, dict):
            raise TrainingDataError(f"{where}: expected an object with a 'text' string")
        if "messages" in record and TEXT_FIELD not in record:
            raise TrainingDataError(
                f"{where}: a chat example, but train.objective is completion, which trains on raw text rows "
                "({\"text\": ...}); prepare the data with data.sources[].tasks: [text]"
            )
        text = record.get(TEXT_FIELD)
        if not isinstance(text, str) or not text.strip():
            raise TrainingDataError(f"{where}.text must be a non-empty string")
        texts.append(text)
    return Dataset.from_dict({TEXT_FIELD: texts})


def completion_arguments() -> dict[str, Any]:
    """TRL settings that make SFTTrainer a continued-pretraining trainer: loss on every token of packed text."""
    return {
        "dataset_text_field": TEXT_FIELD,
        "assistant_only_loss": False,
        "completion_only_loss": False,
        "packing": True,
        "packing_strategy": "bfd_split",
        "eval_packing": True,
    }
