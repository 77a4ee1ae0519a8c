"""Export: merge the adapter into full-precision base weights and write a bundle other services load.

A QLoRA adapter is trained against 4-bit weights, but merging into those loses precision; medtune merges into
the full-precision base and measures, on held-out conversations, how far the merged model is from
base+adapter, and (for a 4-bit recipe) how far it drifts from the 4-bit model that was trained.

The bundle (`merged_dir`) holds the merged checkpoint in sharded safetensors with tokenizer, chat template and
generation config; `lora/` (the adapter alone, as vLLM loads it); `gguf/` (llama.cpp / Ollama); the model
card, NOTICE, merge report and resolved recipe; and `manifest.json` with the sha256 of every file. It is
written to a sibling directory first and moved into place whole, so a failed export never leaves a mix.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoProcessor, GenerationConfig, PreTrainedModel
from transformers.utils import cached_file

from finetune.errors import StageInputError
from finetune.export import _merge_check as merge_check
from finetune.export._gguf import MODELFILE_NAME, convert_to_gguf, gguf_file_name, modelfile
from finetune.export._manifest import BundleError, verify_bundle, write_manifest
from finetune.export._model_card import render_model_card
from finetune.export._vllm_lora import export_vllm_lora
from finetune.models import END_OF_TURN, is_image_text, load_for_training, load_full_precision, load_tokenizer
from finetune.recipe import Recipe, write_resolved

log = logging.getLogger(__name__)

MERGE_REPORT_NAME = "merge_report.json"
MODEL_CARD_NAME = "README.md"
LORA_DIR = "lora"
GGUF_DIR = "gguf"
MODELFILE_CONTEXT_CAP = 8192

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


def export(recipe: Recipe) -> Path:
    """Merge `adapter_dir` into the base and write the export bundle to `merged_dir`; returns it."""
    adapter_dir, merged_dir = recipe.adapter_dir, recipe.merged_dir
    if not (adapter_dir / "adapter_config.json").is_file():
        raise StageInputError(f"{adapter_dir} holds no adapter: run `medtune train` for this recipe first")
    partial = merged_dir.parent / f".{merged_dir.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        report, context_length = _merge_and_measure(recipe, partial)
        _write_bundle(recipe, partial, report, context_length)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    partial.rename(merged_dir)
    log.info("merged model written to %s (max |Δlogit| %.2e)", merged_dir, report["max_abs_logit_diff_fp32"])
    return merged_dir


def _merge_and_measure(recipe: Recipe, out_dir: Path) -> tuple[dict[str, Any], int]:
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


def _write_bundle(recipe: Recipe, out_dir: Path, report: dict[str, Any], context_length: int) -> None:
    """Everything next to the weights: report, NOTICE, recipe, adapter for vLLM, card, GGUF, manifest."""
    (out_dir / MERGE_REPORT_NAME).write_text(json.dumps(report, indent=2), encoding="utf-8")
    notice = NOTICE_TEXT.format(base=recipe.model.base)
    (out_dir / "NOTICE").write_text(notice, encoding="utf-8")
    write_resolved(recipe, out_dir)
    formats = _planned_formats(recipe)
    if "lora" in formats:
        formats["lora"].update(export_vllm_lora(recipe.adapter_dir, out_dir / LORA_DIR, recipe.model.base))
        (out_dir / LORA_DIR / "NOTICE").write_text(notice, encoding="utf-8")
    # The card comes before GGUF: the converter copies its license fields into GGUF metadata.
    (out_dir / MODEL_CARD_NAME).write_text(render_model_card(recipe, report, formats), encoding="utf-8")
    if "gguf" in formats:
        gguf_dir = out_dir / GGUF_DIR
        file = convert_to_gguf(out_dir, out_dir / formats["gguf"]["file"], recipe.export.gguf_type, recipe.name)
        (gguf_dir / MODELFILE_NAME).write_text(
            modelfile(file.name, notice, min(context_length, MODELFILE_CONTEXT_CAP)), encoding="utf-8"
        )
        (gguf_dir / "NOTICE").write_text(notice, encoding="utf-8")
    write_manifest(out_dir, {"recipe": recipe.name, "base_model": recipe.model.base, "formats": formats})
    problems = verify_bundle(out_dir)
    if problems:
        raise BundleError(f"the export in {out_dir} failed its own check:\n  " + "\n  ".join(problems))


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


def _planned_formats(recipe: Recipe) -> dict[str, dict[str, Any]]:
    formats: dict[str, dict[str, Any]] = {"hf": {"dir": "."}}
    if "lora" in recipe.export.formats:
        formats["lora"] = {"dir": LORA_DIR}
    if "gguf" in recipe.export.formats:
        name = gguf_file_name(recipe.name, recipe.export.gguf_type)
        formats["gguf"] = {"dir": GGUF_DIR, "file": f"{GGUF_DIR}/{name}", "outtype": recipe.export.gguf_type,
                           "modelfile": f"{GGUF_DIR}/{MODELFILE_NAME}"}
    return formats


def refresh_model_card(recipe: Recipe) -> Path:
    """Rewrite README.md (e.g. with evaluation results that now exist) and the manifest of an export."""
    merged_dir = recipe.merged_dir
    manifest_path = merged_dir / "manifest.json"
    report_path = merged_dir / MERGE_REPORT_NAME
    if not manifest_path.is_file() or not report_path.is_file():
        raise StageInputError(f"{merged_dir} holds no medtune export: run `medtune export` first")
    problems = verify_bundle(merged_dir)
    if problems:
        raise BundleError(f"{merged_dir} changed since export; not re-signing it:\n  " + "\n  ".join(problems))
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    card = render_model_card(recipe, report, manifest.get("formats", {}))
    (merged_dir / MODEL_CARD_NAME).write_text(card, encoding="utf-8")
    extra = {k: v for k, v in manifest.items() if k not in ("files", "format")}
    write_manifest(merged_dir, extra)
    return merged_dir / MODEL_CARD_NAME


def summary_lines(merged_dir: Path) -> list[str]:
    """What `medtune export` prints: where things are and how close the merge is."""
    report = json.loads((merged_dir / MERGE_REPORT_NAME).read_text(encoding="utf-8"))
    saved = report["saved_vs_base_plus_adapter"]
    lines = [
        f"merged model written to {merged_dir}",
        f"merge check on {report['check_conversations']} held-out conversations: saved checkpoint vs base+adapter "
        f"max |Δlogit| {saved['max_abs_logit_diff']:.2e} (in fp32 before saving: "
        f"{report['max_abs_logit_diff_fp32']:.2e}), greedy answers identical {saved['greedy_identical']}",
    ]
    drift = report.get("drift_vs_4bit_training_model")
    if drift:
        lines.append(
            f"trained on a 4-bit base: the full-precision merge drifts from the trained 4-bit model by max "
            f"|Δlogit| {drift['max_abs_logit_diff']:.3f} (mean {drift['mean_abs_logit_diff']:.4f}), top-1 "
            f"agreement {drift['top1_agreement']:.1%}, greedy answers identical {drift['greedy_identical']}"
        )
    manifest = json.loads((merged_dir / "manifest.json").read_text(encoding="utf-8"))
    for name, info in manifest.get("formats", {}).items():
        if name != "hf":
            lines.append(f"{name}: {merged_dir / info.get('file', info['dir'])}")
    return lines


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
