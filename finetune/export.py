"""Export: merge the adapter into full-precision base weights and write a checkpoint other services load.

A QLoRA adapter is trained against 4-bit weights, but merging into those loses precision; medtune merges into
the full-precision base and measures, on held-out prompts, how far the merged model is from base+adapter.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoProcessor, GenerationConfig, PreTrainedModel

from finetune.gemma import END_OF_TURN
from finetune.model import is_image_text, load_full_precision, load_tokenizer
from finetune.recipe import Recipe, write_resolved
from finetune.train import StageInputError

log = logging.getLogger(__name__)

MERGE_REPORT_NAME = "merge_report.json"
MERGE_CHECK_PROMPTS = 4

NOTICE_TEXT = """\
This model is a derivative of {base}.

MedGemma models are provided under and subject to the Health AI Developer Foundations Terms of Use
(https://developers.google.com/health-ai-developer-foundations/terms). Redistribution of this derivative
(adapters or merged weights) must carry those terms and their use restrictions, and recipients must be told
that the model is not a medical device and is not intended to be used without appropriate validation,
adaptation and clinical oversight.
"""


def _export_dtype(recipe: Recipe) -> torch.dtype:
    if recipe.export.dtype != "auto":
        return getattr(torch, recipe.export.dtype)
    config = AutoConfig.from_pretrained(recipe.model.base, revision=recipe.model.revision)
    dtype = getattr(config.get_text_config(), "dtype", None) or getattr(config, "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def held_out_prompts(data_dir: Path, limit: int = MERGE_CHECK_PROMPTS) -> list[list[dict[str, Any]]]:
    """The first conversations of the test split (falling back to validation), as merge-check inputs."""
    for split in ("test", "validation"):
        path = data_dir / f"{split}.jsonl"
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                rows = [json.loads(line) for line, _ in zip(handle, range(limit), strict=False)]
            if rows:
                return [row["messages"] for row in rows]
    raise StageInputError(f"no test or validation split in {data_dir}: run `medtune prepare` first")


@torch.no_grad()
def _logits(model: PreTrainedModel, batches: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    return [model(**batch).logits.float() for batch in batches]


def export(recipe: Recipe) -> Path:
    """Merge `adapter_dir` into the base and write `merged_dir`; returns it."""
    adapter_dir, merged_dir = recipe.adapter_dir, recipe.merged_dir
    if not (adapter_dir / "adapter_config.json").is_file():
        raise StageInputError(f"{adapter_dir} holds no adapter: run `medtune train` for this recipe first")
    tokenizer = load_tokenizer(recipe.model.base, recipe.model.revision)
    prompts = held_out_prompts(recipe.data_dir)
    batches = [
        tokenizer.apply_chat_template(p, tokenize=True, return_dict=True, return_tensors="pt") for p in prompts
    ]
    # Compare in fp32 so the measured difference is the merge's, not rounding of the compute dtype.
    base = load_full_precision(recipe.model.base, dtype=torch.float32, revision=recipe.model.revision)
    batches = [{k: v.to(base.device) for k, v in b.items()} for b in batches]
    with_adapter = PeftModel.from_pretrained(base, str(adapter_dir))
    reference = _logits(with_adapter, batches)
    merged = with_adapter.merge_and_unload()
    merged_logits = _logits(merged, batches)
    max_diff = max((a - b).abs().max().item() for a, b in zip(reference, merged_logits, strict=True))
    greedy_agree = sum(
        int(torch.equal(a.argmax(-1), b.argmax(-1))) for a, b in zip(reference, merged_logits, strict=True)
    )

    dtype = _export_dtype(recipe)
    merged = merged.to(dtype)
    merged_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(merged_dir, max_shard_size=recipe.export.max_shard_size, safe_serialization=True)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(merged_dir)
    if is_image_text(recipe.model.base, recipe.model.revision):
        AutoProcessor.from_pretrained(recipe.model.base, revision=recipe.model.revision).save_pretrained(merged_dir)
    _write_generation_config(merged, tokenizer, merged_dir)
    report = {
        "base_model": recipe.model.base,
        "adapter": str(adapter_dir),
        "merged_dtype": str(dtype).removeprefix("torch."),
        "check_prompts": len(prompts),
        "max_abs_logit_diff_fp32": max_diff,
        "greedy_tokens_identical": f"{greedy_agree}/{len(prompts)}",
        "trained_on_4bit_base": recipe.model.load_in_4bit,
    }
    (merged_dir / MERGE_REPORT_NAME).write_text(json.dumps(report, indent=2), encoding="utf-8")
    (merged_dir / "NOTICE").write_text(NOTICE_TEXT.format(base=recipe.model.base), encoding="utf-8")
    write_resolved(recipe, merged_dir)
    log.info("merged model written to %s (max |Δlogit| %.2e)", merged_dir, max_diff)
    return merged_dir


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
