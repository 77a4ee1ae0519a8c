"""DPO on clinicians' choices (`train.objective: dpo`), through TRL's DPOTrainer.

Data prep writes a preference pair as the chosen conversation (`messages`, ending with the chosen answer) with the
rejected answer in `meta.rejected` (see `data_prep.tasks`), so pairs pass the same splitting, de-identification,
quality gate and data card as every other example. The reference model is the starting one without a second copy
of the base: with fresh LoRA, the base with the adapter disabled; starting from an SFT adapter (`train.start_from`),
a frozen copy of that adapter, which TRL keeps beside it and which is left out of the written adapter. The result is
one adapter on `model.base`, as export, serve and eval expect.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback
from trl import DPOConfig, DPOTrainer

from finetune.errors import StageInputError
from finetune.models import ChatFormatError, check_lora_targets, check_messages, is_multimodal, load_tokenizer
from finetune.recipe import Recipe
from finetune.train._data import TrainingDataError, split_lines
from finetune.train._grpo import policy_model
from finetune.train._sft import CHECKPOINTS_NAME, _callbacks, _prepare_fsdp, training_arguments
from finetune.train._trainer import TrainingGuards, use_progress_line

REFERENCE_ADAPTER = "ref"
"""The name TRL gives the frozen copy of a starting adapter."""


class GuardedDPOTrainer(TrainingGuards, DPOTrainer):
    """DPOTrainer with medtune's guards; the written adapter is the trained one alone, never TRL's reference copy."""

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        # PEFT writes every adapter it holds, the reference copy into a subdirectory of its name: not part of the
        # result (a resumed run makes it again from train.start_from).
        copy = Path(output_dir or self.args.output_dir) / REFERENCE_ADAPTER
        if copy.is_dir() and (copy / "adapter_config.json").is_file():
            shutil.rmtree(copy)


def _pair_row(record: Any, where: str) -> dict[str, Any]:
    """`{prompt, chosen, rejected}` of one prepared pair, in TRL's conversational form."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TrainingDataError(f"{where}: expected an object with a 'messages' list")
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    rejected = meta.get("rejected")
    try:
        messages = check_messages(record["messages"])
    except ChatFormatError as exc:
        raise TrainingDataError(f"{where}: {exc}") from None
    if not messages or messages[-1]["role"] != "assistant" or not isinstance(messages[-1]["content"], str):
        raise TrainingDataError(f"{where}: a preference pair ends with the chosen answer (an assistant turn)")
    if not isinstance(rejected, str) or not rejected.strip():
        raise TrainingDataError(
            f"{where}: meta.rejected (the answer not chosen) is missing; DPO trains on pairs prepared from "
            "format: preference sources"
        )
    chosen = messages[-1]["content"]
    if chosen.strip() == rejected.strip():
        raise TrainingDataError(f"{where}: the chosen and rejected answers are the same; the pair teaches nothing")
    return {"prompt": messages[:-1], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def load_pair_rows(path: Path) -> Dataset:
    """A prepared split as DPO's pairs; problems name file and line."""
    if not path.is_file():
        raise StageInputError(f"{path} is missing: run `medtune prepare` for this recipe first")
    rows = [_pair_row(record, where) for where, record in split_lines(path)]
    if not rows:
        raise StageInputError(f"{path} holds no examples")
    return Dataset.from_list(rows)


def dpo_config(recipe: Recipe, checkpoint_dir: Path, multimodal: bool = False) -> DPOConfig:
    """TRL's DPO settings: the shared ones, the row length (prompt + answer), beta and the loss."""
    dpo = recipe.train.dpo
    return DPOConfig(
        **training_arguments(recipe, checkpoint_dir, has_eval=True, multimodal=multimodal),
        max_length=recipe.train.max_length,
        beta=dpo.beta,
        loss_type=[dpo.loss_type],
    )


def build_dpo_trainer(recipe: Recipe, callbacks: Sequence[TrainerCallback] = ()) -> GuardedDPOTrainer:
    """The DPO trainer for the recipe, its pairs read and its model and adapter checked before the first step."""
    train_set = load_pair_rows(recipe.data_dir / "train.jsonl")
    eval_set = load_pair_rows(recipe.data_dir / "validation.jsonl")
    model, peft_config = policy_model(recipe)
    trainer = GuardedDPOTrainer(
        model=model,
        args=dpo_config(recipe, recipe.adapter_dir / CHECKPOINTS_NAME, multimodal=is_multimodal(model)),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=load_tokenizer(recipe.model.base, recipe.model.revision),
        peft_config=peft_config,
        callbacks=[*_callbacks(recipe, recipe.adapter_dir), *callbacks],
    )
    if trainer.is_fsdp_enabled:
        _prepare_fsdp(trainer)
    use_progress_line(trainer)
    check_lora_targets(trainer.model, recipe.lora.language_model_only)
    return trainer
