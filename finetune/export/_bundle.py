"""Export: merge the adapter into full-precision base weights and write a bundle other services load.

The bundle (`merged_dir`) holds the merged checkpoint in sharded safetensors with tokenizer, chat template and
generation config (see `_merge`); `lora/` (the adapter alone, as vLLM loads it); `gguf/` (llama.cpp /
Ollama); the model card, NOTICE, merge report and resolved recipe; and `manifest.json` with the sha256 of
every file. It is written to a sibling directory first and moved into place whole, so a failed export never
leaves a mix.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from finetune.errors import StageInputError
from finetune.export._gguf import MODELFILE_NAME, convert_to_gguf, gguf_file_name, modelfile
from finetune.export._manifest import BundleError, verify_bundle, write_manifest
from finetune.export._merge import merge_and_measure
from finetune.export._model_card import render_model_card
from finetune.export._vllm_lora import export_vllm_lora
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
        report, context_length = merge_and_measure(recipe, partial)
        _write_bundle(recipe, partial, report, context_length)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    partial.rename(merged_dir)
    log.info("merged model written to %s (max |Δlogit| %.2e)", merged_dir, report["max_abs_logit_diff_fp32"])
    return merged_dir


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


