"""Merging: the adapter merged into full-precision base weights, measured against base+adapter as it is saved.

A QLoRA adapter is trained against 4-bit weights, but merging into those loses precision; medtune merges into
the full-precision base and measures, on held-out conversations, how far the merged model is from
base+adapter, and (for a 4-bit recipe) how far it drifts from the 4-bit model that was trained. The
checkpoint is written with a tokenizer and generation config that llama.cpp, vLLM and older transformers read.
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoProcessor, GenerationConfig, PreTrainedModel
from transformers.utils import cached_file

from finetune.errors import StageInputError
from finetune.export import _merge_check as merge_check
from finetune.models import END_OF_TURN, is_image_text, load_for_training, load_full_precision, load_tokenizer
from finetune.recipe import Recipe


def _export_dtype(recipe: Recipe) -> torch.dtype:
    if recipe.export.dtype != "auto":
        return getattr(torch, recipe.export.dtype)
    config = AutoConfig.from_pretrained(recipe.model.base, revision=recipe.model.revision)
    dtype = getattr(config.get_text_config(), "dtype", None) or getattr(config, "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def held_out_prompts(data_dir: Path, limit: int) -> list[list[dict[str, Any]]]:
    """The first conversations of the test split (falling back to validation), as merge-check inputs."""
    for split in ("test", "validation"):
        path = data_dir / f"{split}.jsonl"
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                rows = [json.loads(line) for line, _ in zip(handle, range(limit), strict=False)]
            if rows:
                return [row["messages"] for row in rows]
    raise StageInputError(f"no test or validation split in {data_dir}: run `medtune prepare` first")


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def merge_and_measure(recipe: Recipe, out_dir: Path) -> tuple[dict[str, Any], int]:
    """Write the merged checkpoint and tokenizer to `out_dir`; return the merge report and the context length."""
    base_path, revision, adapter_dir = recipe.model.base, recipe.model.revision, recipe.adapter_dir
    multimodal = is_image_text(base_path, revision)
    tokenizer = load_tokenizer(base_path, revision)
    conversations = held_out_prompts(recipe.data_dir, recipe.export.merge_check_prompts)
    inputs = merge_check.check_inputs(tokenizer, conversations, recipe.export.merge_check_new_tokens, multimodal)

    # Compare in fp32 so the measured difference is the merge's, not rounding of the compute dtype.
    base = load_full_precision(base_path, dtype=torch.float32, revision=revision)
    with_adapter = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    reference = merge_check.run(with_adapter, tokenizer, inputs)
    with with_adapter.disable_adapter():
        plain_base = merge_check.run(with_adapter, tokenizer, inputs)
    merged = with_adapter.merge_and_unload()
    in_memory = merge_check.compare(reference, merge_check.run(merged, tokenizer, inputs))
    dtype = _export_dtype(recipe)
    merged = merged.to(dtype)
    merged.save_pretrained(out_dir, max_shard_size=recipe.export.max_shard_size, safe_serialization=True)
    context_length = int(getattr(merged.config.get_text_config(), "max_position_embeddings", 8192))
    _write_generation_config(merged, tokenizer, out_dir)
    del merged, with_adapter, base
    _free()

    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(out_dir)
    _copy_sentencepiece_model(base_path, revision, out_dir)
    _make_tokenizer_config_portable(tokenizer, out_dir)
    if multimodal:
        AutoProcessor.from_pretrained(base_path, revision=revision).save_pretrained(out_dir)
    # What other services will load: the checkpoint as written, read back through the Auto classes.
    saved_model = load_full_precision(str(out_dir), dtype=torch.float32)
    shipped = merge_check.run(saved_model, tokenizer, inputs)
    del saved_model
    _free()
    report: dict[str, Any] = {
        "base_model": base_path,
        "adapter": str(adapter_dir),
        "merged_dtype": str(dtype).removeprefix("torch."),
        "check_conversations": len(conversations),
        "positions_compared": sum(t.shape[0] for t in reference.logits),
        "greedy_new_tokens": recipe.export.merge_check_new_tokens,
        "logit_scale": merge_check.logit_scale(reference),
        "max_abs_logit_diff_fp32": in_memory["max_abs_logit_diff"],
        "greedy_tokens_identical": in_memory["greedy_identical"],
        "merged_vs_base_plus_adapter": in_memory,
        "saved_vs_base_plus_adapter": merge_check.compare(reference, shipped),
        "adapter_effect_vs_base": merge_check.compare(reference, plain_base),
        "trained_on_4bit_base": recipe.model.load_in_4bit,
    }
    if recipe.model.load_in_4bit:
        report.update(_drift_from_4bit_training(recipe, tokenizer, inputs, shipped, plain_base))
    return report, context_length


def _drift_from_4bit_training(
    recipe: Recipe,
    tokenizer: Any,
    inputs: merge_check.CheckInputs,
    shipped: merge_check.Outputs,
    plain_base: merge_check.Outputs,
) -> dict[str, Any]:
    """The trained model (4-bit base + adapter) against the shipped merge; and the 4-bit base alone."""
    quantized = load_for_training(recipe.model)
    quantized.config.use_cache = True
    trained = PeftModel.from_pretrained(quantized, str(recipe.adapter_dir)).eval()
    trained_outputs = merge_check.run(trained, tokenizer, inputs)
    with trained.disable_adapter():
        quantized_base = merge_check.run(trained, tokenizer, inputs)
    del trained, quantized
    _free()
    return {
        "drift_vs_4bit_training_model": merge_check.compare(trained_outputs, shipped),
        "base_quantization_error": merge_check.compare(plain_base, quantized_base),
    }


def _write_generation_config(model: PreTrainedModel, tokenizer: Any, merged_dir: Path) -> None:
    """Make sure every consumer stops on `<end_of_turn>`, not only on `<eos>`."""
    config = model.generation_config or GenerationConfig()
    stops = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    for token_id in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)):
        if token_id is not None and token_id not in stops:
            stops.append(token_id)
    config.eos_token_id = [s for s in stops if s is not None]
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.save_pretrained(merged_dir)


def _copy_sentencepiece_model(base_path: str, revision: str | None, out_dir: Path) -> None:
    """Ship the base's `tokenizer.model`: llama.cpp's converter reads Gemma's vocabulary from it.

    transformers 5 saves only `tokenizer.json`, from which the converter cannot tell Gemma's pre-tokenizer.
    """
    source = cached_file(base_path, "tokenizer.model", revision=revision,
                         _raise_exceptions_for_missing_entries=False)
    if source is not None and not (out_dir / "tokenizer.model").is_file():
        shutil.copy2(source, out_dir / "tokenizer.model")


def _make_tokenizer_config_portable(tokenizer: Any, out_dir: Path) -> None:
    """List the added tokens in `tokenizer_config.json` and drop the exporting machine's paths.

    transformers 5 no longer writes `added_tokens_decoder`; without it llama.cpp's converter types
    `<start_of_turn>` as plain text, so llama.cpp would spell it out letter by letter, and older
    transformers releases (still pinned by some serving stacks) would not know the tokens are special.
    """
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.setdefault("added_tokens_decoder", {
        str(token_id): token.__getstate__() for token_id, token in sorted(tokenizer.added_tokens_decoder.items())
    })
    if Path(str(config.get("vocab_file", ""))).is_absolute():
        del config["vocab_file"]
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
