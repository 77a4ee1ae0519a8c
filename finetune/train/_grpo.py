"""GRPO with verifiable clinical rewards (`train.objective: grpo`), through TRL's GRPOTrainer.

For each prompt of the prepared split the policy samples `train.grpo.num_generations` answers; each is scored by
the recipe's rewards (`finetune.train._rewards`) against the reference data prep wrote into the example's
`meta.reference`, and answers better than their group's mean are made more likely. Everything else is SFT's run:
the same 4-bit base and LoRA (or the SFT adapter named in `train.start_from`, which keeps training, so the result is
one adapter on `model.base` that export, serve and eval take unchanged), the trainer guards, checkpoints, resume,
loggers and provenance. Completions are never logged, only reward numbers.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from peft import PeftModel
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from finetune.errors import StageInputError
from finetune.models import (
    ChatFormatError,
    check_lora_config,
    check_lora_targets,
    check_messages,
    device_type,
    is_multimodal,
    load_for_training,
    load_tokenizer,
    lora_config,
)
from finetune.recipe import Recipe
from finetune.train._data import TrainingDataError, split_lines
from finetune.train._rewards import reward_functions
from finetune.train._sft import CHECKPOINTS_NAME, _callbacks, _prepare_fsdp, training_arguments
from finetune.train._trainer import TrainingGuards, use_progress_line

ADAPTER_CONFIG = "adapter_config.json"


def policy_model(recipe: Recipe) -> tuple[Any, Any]:
    """The model GRPO and DPO train and the PEFT config their trainer should wrap it in: with `train.start_from` an
    adapter (the SFT run's), that adapter keeps training (None: the model already is a PeftModel), so the result is
    one adapter on `model.base`; otherwise fresh LoRA on `model.base` (merged start weights already are model.base
    here, see `with_start_base`)."""
    start = recipe.start_from
    if start is not None and not (start / ADAPTER_CONFIG).is_file():
        raise StageInputError(
            f"train.start_from: {start} holds no adapter ({ADAPTER_CONFIG}); point it at the SFT run's adapter "
            "directory"
        )
    model = load_for_training(recipe.model)
    if start is not None:
        named = json.loads((start / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
        base = recipe.model.base
        if named and named != base and Path(named).resolve() != Path(base).resolve():
            raise StageInputError(
                f"train.start_from: {start} is an adapter of {named}, but model.base is {base}; set model.base to "
                "the base it was trained on"
            )
        return PeftModel.from_pretrained(model, str(start), is_trainable=True), None
    peft_config = lora_config(model, recipe.lora)
    check_lora_config(peft_config)
    return model, peft_config


class GuardedGRPOTrainer(TrainingGuards, GRPOTrainer):
    """GRPOTrainer with medtune's guards; tokens/s counts prompt and completion tokens, as TRL does."""

    def _tokens_seen(self) -> int:
        return int(self.state.num_input_tokens_seen)


def _prompt_row(record: Any, where: str) -> dict[str, Any]:
    """`{prompt, reference, lang}` of one prepared row: the conversation up to the model's answer (an answer that
    the row still carries, as a test split's does, is dropped) and the reference as JSON text."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TrainingDataError(f"{where}: expected an object with a 'messages' list")
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    reference = meta.get("reference")
    if not isinstance(reference, dict) or "kind" not in reference:
        raise TrainingDataError(
            f"{where}: meta.reference is missing, so no reward can score an answer; GRPO needs examples of tasks "
            "with a checkable answer (multiple_choice, qa, icd10_coding, extraction), prepared with "
            "train.objective: grpo"
        )
    messages = list(record["messages"])
    while messages and messages[-1].get("role") == "assistant":
        messages.pop()
    if any(not isinstance(m.get("content"), str) for m in messages):
        raise TrainingDataError(f"{where}: GRPO trains on text prompts; this row holds image parts")
    try:
        prompt = check_messages(messages)
    except ChatFormatError as exc:
        raise TrainingDataError(f"{where}: {exc}") from None
    if not prompt or prompt[-1]["role"] != "user":
        raise TrainingDataError(f"{where}: the prompt must end with a user turn")
    return {"prompt": prompt, "reference": json.dumps(reference, ensure_ascii=False), "lang": meta.get("lang", "")}


def load_prompt_rows(path: Path) -> Dataset:
    """A prepared split as GRPO's prompts, each with its reference and language; problems name file and line."""
    if not path.is_file():
        raise StageInputError(f"{path} is missing: run `medtune prepare` for this recipe first")
    rows = [_prompt_row(record, where) for where, record in split_lines(path)]
    if not rows:
        raise StageInputError(f"{path} holds no examples")
    return Dataset.from_list(rows)


def grpo_config(recipe: Recipe, checkpoint_dir: Path, multimodal: bool = False) -> GRPOConfig:
    """TRL's GRPO settings: the shared ones, generation, the KL weight and the reward weights.

    The best checkpoint is the one with the highest mean validation reward. `train.per_device_train_batch_size`
    counts completions, as in TRL: each optimizer step sees batch × accumulation completions, whole groups of
    `num_generations`. vLLM generation (`train.grpo.use_vllm`) is for GPUs with vLLM installed (`.[vllm]`).
    """
    grpo = recipe.train.grpo
    _, weights = reward_functions(grpo.rewards, grpo.max_answer_chars)
    return GRPOConfig(
        **training_arguments(recipe, checkpoint_dir, has_eval=True, multimodal=multimodal,
                             best_metric=("eval_reward", True)),
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        beta=grpo.beta,
        reward_weights=weights,
        scale_rewards=grpo.scale_rewards,
        use_vllm=grpo.use_vllm,
        vllm_mode=grpo.vllm_mode,
        vllm_gpu_memory_utilization=grpo.vllm_gpu_memory_utilization,
        log_completions=False,  # completions hold patient text: only numbers are logged
    )


def _check_vllm(recipe: Recipe) -> None:
    """vLLM generation needs a CUDA GPU and vLLM itself; say so before anything is loaded."""
    if not recipe.train.grpo.use_vllm:
        return
    if device_type() != "cuda":
        raise StageInputError("train.grpo.use_vllm: vLLM generates on a CUDA GPU only; on this machine set "
                              "train.grpo.use_vllm=false")
    if importlib.util.find_spec("vllm") is None:
        raise StageInputError("train.grpo.use_vllm: vLLM is not installed (pip install 'trl[vllm]'), or set "
                              "train.grpo.use_vllm=false to sample with transformers")


def build_grpo_trainer(recipe: Recipe, callbacks: Sequence[TrainerCallback] = ()) -> GuardedGRPOTrainer:
    """The GRPO trainer for the recipe, its prompts read and its model and adapter checked before the first step."""
    _check_vllm(recipe)
    train_set = load_prompt_rows(recipe.data_dir / "train.jsonl")
    eval_set = load_prompt_rows(recipe.data_dir / "validation.jsonl")
    model, peft_config = policy_model(recipe)
    tokenizer = load_tokenizer(recipe.model.base, recipe.model.revision)
    tokenizer.padding_side = "left"  # batched generation
    functions, _ = reward_functions(recipe.train.grpo.rewards, recipe.train.grpo.max_answer_chars)
    trainer = GuardedGRPOTrainer(
        model=model,
        reward_funcs=functions,
        args=grpo_config(recipe, recipe.adapter_dir / CHECKPOINTS_NAME, multimodal=is_multimodal(model)),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*_callbacks(recipe, recipe.adapter_dir), *callbacks],
    )
    if trainer.is_fsdp_enabled:
        _prepare_fsdp(trainer)
    use_progress_line(trainer)
    check_lora_targets(trainer.model, recipe.lora.language_model_only)
    return trainer
