"""QLoRA training with TRL's SFTTrainer: read the prepared splits, train an adapter, write it with its provenance.

Read top to bottom, `train` is the run: load the splits and the 4-bit base, build the trainer with the Gemma guards
around its collator, check the loss masks, train (resuming when asked), keep the best checkpoint, write the
adapter. The adapter directory holds everything needed to know what it is: the adapter weights and config, the
tokenizer (or processor), the resolved recipe, the sha256 of the data card it was trained from and the metrics.
Under `accelerate launch` every rank trains and only the main process writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from datasets import Dataset
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
from trl import SFTConfig

from data_prep.files import sha256_file
from finetune.errors import StageInputError
from finetune.models import (
    END_OF_TURN,
    AssistantMaskError,
    BatchGuard,
    adapter_summary,
    check_lora_targets,
    check_packing_supported,
    device_type,
    is_multimodal,
    load_processor,
    load_tokenizer,
    process_state,
    resolve_compute_dtype,
    verify_assistant_masks,
)
from finetune.recipe import Recipe, write_resolved
from finetune.train._collators import PackedRowsCollator
from finetune.train._completion import completion_arguments, load_text_rows
from finetune.train._data import TrainingDataError, load_chat_rows
from finetune.train._handover import start_model, with_start_base
from finetune.train._trainer import GuardedSFTTrainer, use_progress_line

log = logging.getLogger(__name__)

METRICS_NAME = "training_metrics.json"
PROVENANCE_NAME = "provenance.json"
CHECKPOINTS_NAME = "checkpoints"
TENSORBOARD_NAME = "tensorboard"
MASK_CHECK_EXAMPLES = 64


def load_split(data_dir: Path, split: str, objective: str = "sft") -> Dataset:
    """One split as a dataset of `messages` (plus `images` when its rows carry images), or of `text` for the
    completion objective; meta stays on disk."""
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        raise StageInputError(f"{path} is missing: run `medtune prepare` for this recipe first")
    dataset = load_text_rows(path) if objective == "completion" else load_chat_rows(path)[0]
    if len(dataset) == 0:
        raise StageInputError(f"{path} holds no examples")
    return dataset


def has_images(dataset: Dataset) -> bool:
    return "images" in dataset.column_names


def checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Non-reentrant activation recomputation under the name this transformers release uses.

    transformers 5.24 renamed `gradient_checkpointing*` to `activation_checkpointing*` and warns on the old names;
    earlier 5.x releases only know the old ones.
    """
    fields = {field.name for field in dataclasses.fields(SFTConfig)}
    prefix = "activation" if "activation_checkpointing" in fields else "gradient"
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}}


def training_arguments(
    recipe: Recipe, checkpoint_dir: Path, has_eval: bool, multimodal: bool = False,
    best_metric: tuple[str, bool] = ("eval_loss", False),
) -> dict[str, Any]:
    """The settings every medtune trainer (SFT, GRPO, DPO) shares, as keyword arguments of its TRL config.
    Evaluation and checkpoints share one interval so the best one (`best_metric`: name, greater is better) can be
    kept.

    Under DDP only the multimodal class has parameters without gradients (the frozen vision tower on text batches),
    so only it pays for the search for unused parameters.
    """
    train = recipe.train
    device = device_type()
    dtype = resolve_compute_dtype(recipe.model.compute_dtype, device)
    interval = "steps" if train.eval_steps else "epoch"
    report_to = [name for name in train.report_to if name != "tensorboard"] or "none"  # TensorBoard: see _callbacks
    metric, greater = best_metric
    return dict(
        output_dir=str(checkpoint_dir),
        num_train_epochs=train.num_train_epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        per_device_train_batch_size=train.per_device_train_batch_size,
        per_device_eval_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type=train.lr_scheduler_type,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        optim=train.optim,
        **checkpointing_arguments(train.gradient_checkpointing),
        bf16=str(dtype) == "torch.bfloat16",
        fp16=False,
        use_cpu=device == "cpu",
        logging_steps=train.logging_steps,
        eval_strategy=interval if has_eval else "no",
        eval_steps=train.eval_steps,
        save_strategy=interval,
        save_steps=train.eval_steps,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=has_eval and train.load_best_model_at_end,
        metric_for_best_model=metric if has_eval else None,
        greater_is_better=greater if has_eval else None,
        report_to=report_to,
        run_name=train.run_name or recipe.name,
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        ddp_find_unused_parameters=None if multimodal else False,
    )


def sft_config(
    recipe: Recipe, checkpoint_dir: Path, has_eval: bool, packing: bool | None = None, multimodal: bool = False
) -> SFTConfig:
    """TRL's SFT settings for the recipe: the shared ones, the row length, the loss mask and packing."""
    train = recipe.train
    if train.objective == "completion":
        return SFTConfig(
            **training_arguments(recipe, checkpoint_dir, has_eval, multimodal), max_length=train.max_length,
            **completion_arguments(),
        )
    return SFTConfig(
        **training_arguments(recipe, checkpoint_dir, has_eval, multimodal),
        max_length=train.max_length,
        assistant_only_loss=train.assistant_only_loss,
        packing=train.packing if packing is None else packing,
        packing_strategy="bfd",
        eval_packing=False,  # the validation loss stays a per-example mean, comparable with and without packing
    )


def _configure_loggers(recipe: Recipe, adapter_dir: Path) -> None:
    """wandb stays offline unless the recipe or WANDB_MODE says otherwise; its files stay inside the run."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if "wandb" in recipe.train.report_to:
        os.environ.setdefault("WANDB_MODE", recipe.train.wandb_mode)
        os.environ.setdefault("WANDB_PROJECT", recipe.train.wandb_project)
        os.environ["WANDB_DIR"] = str(adapter_dir)  # nothing is written outside the run's own directory
        os.environ.setdefault("WANDB_LOG_MODEL", "false")


def _callbacks(recipe: Recipe, adapter_dir: Path) -> list[TrainerCallback]:
    callbacks: list[TrainerCallback] = []
    if recipe.train.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(recipe.train.early_stopping_patience,
                                               recipe.train.early_stopping_threshold))
    if "tensorboard" in recipe.train.report_to:
        tensorboard = TensorBoardCallback()
        tensorboard.logging_dir = str(adapter_dir / TENSORBOARD_NAME)
        callbacks.append(tensorboard)
    return callbacks


def _prepare_checkpoints(checkpoint_dir: Path, resume: bool) -> str | None:
    """The checkpoint to resume from; a fresh run moves old checkpoints out of the way (said, not silent)."""
    if resume:
        last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
        if last is None:
            raise StageInputError(f"--resume: no checkpoint in {checkpoint_dir}; run `medtune train` without --resume")
        log.info("resuming from %s", last)
        return last
    old = sorted(checkpoint_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")) if checkpoint_dir.is_dir() else []
    if old and process_state().is_main_process:
        log.warning("starting a fresh run: removing %d checkpoint(s) of an earlier run in %s (use --resume to "
                    "continue it instead)", len(old), checkpoint_dir)
        for path in old:
            shutil.rmtree(path)
    return None


def _example_lengths(dataset: Dataset) -> list[int]:
    """Token count of every tokenized example, packed or not, without reading the tokens themselves."""
    if "seq_lengths" in dataset.column_names:
        return [length for row in dataset["seq_lengths"] for length in row]
    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()


def _check_masks(trainer: GuardedSFTTrainer, raw: Dataset) -> None:
    """Verify the labels TRL built against prefix renderings before spending compute on them.

    TRL drops examples whose mask is empty (a template without generation markers, or truncation that cut the
    answer off); a silent drop hides a broken template, so it is an error here, as is an answer cut off by
    train.max_length. The first examples' labels are compared with prefix renderings of the chat template; for
    packed rows, whose order is the packer's, they are taken from TRL's own preparation without packing.
    """
    tokenizer = trainer._tokenizer
    dataset = trainer.train_dataset
    lengths = _example_lengths(dataset)
    if len(lengths) != len(raw):
        raise AssistantMaskError(
            f"{len(raw) - len(lengths)} of {len(raw)} training examples have no assistant tokens left to "
            "train on (check the chat template's generation markers, or raise train.max_length)"
        )
    limit = trainer.args.max_length
    if any(length >= limit for length in lengths):
        # An example that long fills its row alone; a complete one ends with <end_of_turn>\n.
        if "seq_lengths" in dataset.column_names:
            rows = [i for i, row in enumerate(dataset["seq_lengths"]) if max(row) >= limit]
        else:
            rows = [i for i, length in enumerate(lengths) if length >= limit]
        end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        cut = sum(1 for ids in dataset.select(rows)["input_ids"] if ids[-2] != end_of_turn)
        if cut:
            raise AssistantMaskError(
                f"{cut} of {len(raw)} training examples are longer than train.max_length ({limit} tokens), so their "
                "answers would be cut off and the model would learn answers that never end; prepare the data with "
                "data.quality.max_tokens at most train.max_length, or raise train.max_length"
            )
    count = min(MASK_CHECK_EXAMPLES, len(raw))
    sample = raw.select(range(count))
    if "seq_lengths" in dataset.column_names:  # TRL's private preparation step: the same code, without packing
        dataset = trainer._prepare_dataset(sample, trainer.processing_class, trainer.args, False, None, "mask check")
    verify_assistant_masks(
        tokenizer,
        sample["messages"],
        [[int(label != -100) for label in dataset[i]["labels"]] for i in range(count)],
    )


def _prepare_fsdp(trainer: GuardedSFTTrainer) -> None:
    """PEFT's wrap policy (trainable and frozen parameters in separate units), and no paged 8-bit optimizer."""
    from peft.utils.other import fsdp_auto_wrap_policy

    if "8bit" in trainer.args.optim:
        raise ValueError(
            f"train.optim={trainer.args.optim} fails when FSDP with QLoRA saves a checkpoint; use "
            "train.optim=adamw_torch under FSDP"
        )
    trainer.accelerator.state.fsdp_plugin.auto_wrap_policy = fsdp_auto_wrap_policy(trainer.model)


def build_trainer(recipe: Recipe, callbacks: Sequence[TrainerCallback] = ()) -> GuardedSFTTrainer:
    """The trainer for the recipe, with every check that can run before the first step already passed."""
    adapter_dir = recipe.adapter_dir
    objective = recipe.train.objective
    train_set = load_split(recipe.data_dir, "train", objective)
    eval_set = load_split(recipe.data_dir, "validation", objective)
    with_images = has_images(train_set) or has_images(eval_set)
    model, peft_config = start_model(recipe)
    multimodal = is_multimodal(model)
    if with_images and not multimodal:
        raise TrainingDataError(
            f"{recipe.data_dir}: the splits hold images but {recipe.model.base} is a text-only model; use the "
            "image+text model (e.g. google/medgemma-4b-it) or drop the image parts"
        )
    processing = load_processor(recipe.model.base, recipe.model.revision) if with_images else \
        load_tokenizer(recipe.model.base, recipe.model.revision)
    tokenizer = processing.tokenizer if with_images else processing
    packing = (recipe.train.packing or objective == "completion") and not with_images
    if recipe.train.packing and with_images:
        log.info("packing is off for this run: TRL does not pack image+text rows")
    if packing:
        check_packing_supported(model)
    trainer = GuardedSFTTrainer(
        model=model,
        args=sft_config(recipe, adapter_dir / CHECKPOINTS_NAME, has_eval=True, packing=packing, multimodal=multimodal),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=processing,
        peft_config=peft_config,
        callbacks=[*_callbacks(recipe, adapter_dir), *callbacks],
        loss_kernel=recipe.train.loss_kernel,
    )
    collator = trainer.data_collator
    if packing and model.config._attn_implementation != "flash_attention_2":
        collator = PackedRowsCollator(pad_token_id=tokenizer.pad_token_id)  # eager/sdpa: keep packed rows as rows
    assistant_only = recipe.train.assistant_only_loss and objective == "sft"
    trainer.data_collator = BatchGuard(collator, tokenizer, multimodal, assistant_only)
    if trainer.is_fsdp_enabled:
        _prepare_fsdp(trainer)
    use_progress_line(trainer)
    check_lora_targets(trainer.model, recipe.lora.language_model_only)
    if assistant_only and not with_images:
        _check_masks(trainer, train_set)
    return trainer


def train(recipe: Recipe, resume: bool = False, callbacks: Sequence[TrainerCallback] = (),
          build: Callable[[Recipe, Sequence[TrainerCallback]], Trainer] | None = None) -> Path:
    """Train the recipe's adapter (continuing from the last checkpoint with `resume`); returns the adapter directory.

    `build` makes the trainer (default: SFT's `build_trainer`); GRPO and DPO pass theirs and share the rest of the
    run: checkpoints and resume, loggers, the final evaluation, the adapter and its provenance."""
    recipe = with_start_base(recipe)
    adapter_dir = recipe.adapter_dir
    state = process_state()
    if state.is_main_process:
        adapter_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _prepare_checkpoints(adapter_dir / CHECKPOINTS_NAME, resume)
    state.wait_for_everyone()
    _configure_loggers(recipe, adapter_dir)
    trainer = (build or build_trainer)(recipe, callbacks)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.perf_counter() - started
    final_eval = final_evaluation(trainer)
    if trainer.is_fsdp_enabled:  # gather the sharded adapter into one file
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(adapter_dir))
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(adapter_dir))
        _write_provenance(recipe, adapter_dir, trainer, result.training_loss, final_eval, runtime)
    state.wait_for_everyone()
    return adapter_dir


def final_evaluation(trainer: Trainer) -> dict[str, Any]:
    """The kept model's validation metrics: taken from the log when that model (the best checkpoint, or the last
    step) was already evaluated, evaluated once more only when it was not."""
    state = trainer.state
    kept = state.global_step
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        kept = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[-1])
    logged = [entry for entry in state.log_history if entry.get("step") == kept and "eval_loss" in entry]
    if logged:
        return {key: value for key, value in logged[-1].items() if key.startswith("eval_") or key == "epoch"}
    return trainer.evaluate()


def _write_provenance(
    recipe: Recipe, adapter_dir: Path, trainer: Trainer, train_loss: float, final_eval: dict[str, Any],
    runtime: float,
) -> None:
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    summary = adapter_summary(adapter_dir, tokens_added=recipe.lora.train_embeddings)
    state = trainer.state
    metrics = {
        "train_loss": train_loss,
        "eval_loss": final_eval.get("eval_loss"),
        "eval_perplexity": math.exp(final_eval["eval_loss"])
        if "eval_loss" in final_eval and recipe.train.objective in ("sft", "completion") else None,  # GRPO, DPO: none
        "global_steps": state.global_step,
        "max_steps": state.max_steps,
        "stopped_early": state.global_step < state.max_steps,
        "best_eval_loss": state.best_metric if trainer.args.metric_for_best_model == "eval_loss" else None,
        "best_metric": {trainer.args.metric_for_best_model: state.best_metric},  # GRPO keeps the highest eval_reward
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "epochs": state.epoch,
        "objective": recipe.train.objective,
        "packing": getattr(trainer.args, "packing", False),
        "processes": trainer.args.world_size,
        "train_rows": len(trainer.train_dataset),
        "runtime_seconds": round(runtime, 2),
        "trainable_parameters": trainable,
        **summary,
        "log_history": state.log_history,
    }
    (adapter_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    card = recipe.data_dir / "data_card.json"
    provenance = {
        "base_model": recipe.model.base,
        "base_revision": recipe.model.revision,
        "objective": recipe.train.objective,
        "start_from": str(recipe.start_from) if recipe.start_from is not None else None,
        "data_card_sha256": sha256_file(card) if card.is_file() else None,
        "train_file_sha256": sha256_file(recipe.data_dir / "train.jsonl"),
    }
    (adapter_dir / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    write_resolved(recipe, adapter_dir)
    log.info("adapter written to %s (%s trainable parameters, %.2f MiB)", adapter_dir, f"{trainable:,}",
             summary["adapter_bytes"] / 2**20)
