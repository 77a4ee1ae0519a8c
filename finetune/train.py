"""QLoRA training with TRL's SFTTrainer: read the prepared splits, train an adapter, write it with its provenance.

The adapter directory holds everything needed to know what it is: the adapter weights and config, the
tokenizer, the resolved recipe, the sha256 of the data card it was trained from and the training metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset
from trl import SFTConfig, SFTTrainer

from finetune.gemma import AssistantMaskError, resolve_compute_dtype, verify_assistant_masks
from finetune.model import device_type, load_for_training, load_tokenizer, lora_config
from finetune.recipe import Recipe, write_resolved

log = logging.getLogger(__name__)

METRICS_NAME = "training_metrics.json"
PROVENANCE_NAME = "provenance.json"
MASK_CHECK_EXAMPLES = 64


class StageInputError(RuntimeError):
    """A stage was asked to run before the stage it reads from wrote its outputs."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_split(data_dir: Path, split: str) -> Dataset:
    """One split as a dataset of `messages` only (meta stays on disk: it is not model input)."""
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        raise StageInputError(f"{path} is missing: run `medtune prepare` for this recipe first")
    dataset = load_dataset("json", data_files=str(path), split="train")
    if len(dataset) == 0:
        raise StageInputError(f"{path} holds no examples")
    return dataset.select_columns(["messages"])


def sft_config(recipe: Recipe, checkpoint_dir: Path, has_eval: bool) -> SFTConfig:
    train = recipe.train
    device = device_type()
    dtype = resolve_compute_dtype(recipe.model.compute_dtype, device)
    report_to = list(train.report_to) or "none"
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        num_train_epochs=train.num_train_epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        per_device_train_batch_size=train.per_device_train_batch_size,
        per_device_eval_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        max_length=train.max_length,
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type=train.lr_scheduler_type,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        optim=train.optim,
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        assistant_only_loss=train.assistant_only_loss,
        packing=False,
        bf16=str(dtype) == "torch.bfloat16",
        fp16=False,
        use_cpu=device == "cpu",
        logging_steps=train.logging_steps,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",
        save_total_limit=2,
        report_to=report_to,
        run_name=recipe.name,
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def _configure_loggers(recipe: Recipe, adapter_dir: Path) -> None:
    """wandb stays offline unless the environment says otherwise; its files stay inside the run."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if "wandb" in recipe.train.report_to:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_PROJECT", recipe.train.wandb_project)
        os.environ["WANDB_DIR"] = str(adapter_dir)  # nothing is written outside the run's own directory
        os.environ.setdefault("WANDB_LOG_MODEL", "false")


def _check_masks(trainer: SFTTrainer, raw: Dataset) -> None:
    """Verify the labels TRL built against prefix renderings before spending compute on them.

    TRL drops examples whose mask is empty (a template without generation markers, or truncation that cut
    the answer off); a silent drop hides a broken template, so it is an error here.
    """
    tokenized = trainer.train_dataset
    if len(tokenized) != len(raw):
        raise AssistantMaskError(
            f"{len(raw) - len(tokenized)} of {len(raw)} training examples have no assistant tokens left to "
            "train on (check the chat template's generation markers, or raise train.max_length)"
        )
    count = min(MASK_CHECK_EXAMPLES, len(tokenized))
    verify_assistant_masks(
        trainer.processing_class,
        [raw[i]["messages"] for i in range(count)],
        [[int(label != -100) for label in tokenized[i]["labels"]] for i in range(count)],
    )


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train the recipe's adapter; returns the adapter directory."""
    adapter_dir = recipe.adapter_dir
    adapter_dir.mkdir(parents=True, exist_ok=True)
    _configure_loggers(recipe, adapter_dir)
    train_set = load_split(recipe.data_dir, "train")
    eval_set = load_split(recipe.data_dir, "validation")
    tokenizer = load_tokenizer(recipe.model.base, recipe.model.revision)
    model = load_for_training(recipe.model)
    checkpoint_dir = adapter_dir / "checkpoints"
    trainer = SFTTrainer(
        model=model,
        args=sft_config(recipe, checkpoint_dir, has_eval=True),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=lora_config(model, recipe.lora),
    )
    if recipe.train.assistant_only_loss:
        _check_masks(trainer, train_set)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    runtime = time.perf_counter() - started
    final_eval = trainer.evaluate()
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    _write_provenance(recipe, adapter_dir, trainer, result.training_loss, final_eval, runtime)
    return adapter_dir


def _write_provenance(
    recipe: Recipe, adapter_dir: Path, trainer: SFTTrainer, train_loss: float, final_eval: dict[str, Any],
    runtime: float,
) -> None:
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    adapter_file = adapter_dir / "adapter_model.safetensors"
    metrics = {
        "train_loss": train_loss,
        "eval_loss": final_eval.get("eval_loss"),
        "eval_perplexity": math.exp(final_eval["eval_loss"]) if "eval_loss" in final_eval else None,
        "global_steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "runtime_seconds": round(runtime, 2),
        "trainable_parameters": trainable,
        "adapter_bytes": adapter_file.stat().st_size if adapter_file.exists() else None,
        "log_history": trainer.state.log_history,
    }
    (adapter_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    card = recipe.data_dir / "data_card.json"
    provenance = {
        "base_model": recipe.model.base,
        "base_revision": recipe.model.revision,
        "data_card_sha256": sha256_of(card) if card.is_file() else None,
        "train_file_sha256": sha256_of(recipe.data_dir / "train.jsonl"),
    }
    (adapter_dir / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    write_resolved(recipe, adapter_dir)
    log.info("adapter written to %s (%d trainable parameters)", adapter_dir, trainable)
