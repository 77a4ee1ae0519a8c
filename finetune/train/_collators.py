"""Batches of packed rows for attention implementations that work from a mask (eager, sdpa).

TRL batches packed rows "padding-free": the whole batch becomes one row, which flash attention handles with
cumulative sequence lengths but which costs eager/sdpa attention over (batch × max_length)² positions. Here each
packed row stays a row: position ids restart at every example and no 2D attention mask is passed, so transformers
builds a block-diagonal causal mask per row (`masking_utils.find_packed_sequence_indices`) and no example sees
another. The padding after a short row restarts its positions too, so it is a segment no example attends to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling


@dataclass
class PackedRowsCollator:
    """Right-padded packed rows with restarting `position_ids` and no `attention_mask`."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    _inner: DataCollatorForLanguageModeling = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._inner = DataCollatorForLanguageModeling(
            pad_token_id=self.pad_token_id, padding_free=False, return_position_ids=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self._inner(examples)
        batch.pop("attention_mask")  # with a 2D mask transformers would not look for example boundaries
        positions = batch["position_ids"]
        for row, example in enumerate(examples):  # the padding after a short row is one segment of its own
            length = len(example["input_ids"])
            positions[row, length:] = torch.arange(positions.shape[1] - length)
        # The first token of an example is never predicted from the example packed before it.
        batch["labels"][batch["position_ids"] == 0] = -100
        return batch


def real_token_count(batch: dict[str, torch.Tensor], pad_token_id: int | None) -> torch.Tensor:
    """Tokens that are not padding, for throughput figures."""
    if "attention_mask" in batch:
        return batch["attention_mask"].sum()
    if pad_token_id is None:
        return torch.tensor(batch["input_ids"].numel())
    return (batch["input_ids"] != pad_token_id).sum()
