"""The model card (README.md) of an export: what the model is, what it was trained on, how well it did, its limits.

Built only from files the earlier stages wrote (resolved recipe, data card, training metrics, merge report,
evaluation report), so it holds counts and scores, never patient text. Evaluation runs after export;
`medtune export RECIPE --refresh-card` rewrites the card (and the manifest) once a report exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from finetune.recipe import Recipe

HAI_DEF_TERMS = "https://developers.google.com/health-ai-developer-foundations/terms"
LANGUAGE_NAMES = {"ru": "Russian", "kk": "Kazakh", "zh": "Chinese"}
INTENDED_USE = (
    "- For research and for building supervised clinical-documentation tools: drafting, terminology, "
    "summaries that a qualified clinician reviews.",
    "- **Not a medical device.** Not validated for diagnosis, treatment or triage, and not to be used for "
    "clinical decisions without appropriate validation, adaptation and clinical oversight.",
    "- Trained on a limited set of de-identified records from specific clinics; it can be wrong, out of "
    "date or biased towards those clinics' practice and populations, and it can state errors fluently.",
    "- Evaluate on your own data before any use; the numbers below come from a small held-out split.",
    "- Use is subject to the Health AI Developer Foundations terms (see `NOTICE`).",
)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _languages(recipe: Recipe, data_card: dict[str, Any] | None) -> list[str]:
    if data_card is not None:
        found = data_card.get("splits", {}).get("train", {}).get("by_language", {})
        if found:
            return sorted(found)
    return sorted({source.lang for source in recipe.data.sources if source.lang != "auto"})


def _front_matter(recipe: Recipe, languages: list[str]) -> str:
    meta = {
        "license": "other",
        "license_name": "health-ai-developer-foundations",
        "license_link": HAI_DEF_TERMS,
        "language": languages,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["medical", "gemma3", "medgemma", "lora", "medtune"],
    }
    if not Path(recipe.model.base).exists():  # a hub id; a local directory means nothing to the reader
        meta["base_model"] = recipe.model.base
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n"


def _data_section(data_card: dict[str, Any] | None) -> list[str]:
    if data_card is None:
        return ["No data card was found next to the training data."]
    splits = data_card.get("splits", {})
    lines = [
        "De-identified chat examples made from clinic records (counts only; the data card has the full account).",
        "",
        "| split | examples | patients | languages |",
        "|---|---|---|---|",
    ]
    for split, info in splits.items():
        languages = ", ".join(f"{k}: {v}" for k, v in info.get("by_language", {}).items()) or "-"
        lines.append(f"| {split} | {info.get('examples', 0)} | {info.get('patients', 0)} | {languages} |")
    records = data_card.get("records", {})
    redactions = data_card.get("redactions", {})
    lines += [
        "",
        f"Records read: {records.get('in', '?')}, converted: {records.get('converted', '?')}, "
        f"rejected: {records.get('rejected', '?')}. Examples rejected by quality filters: "
        f"{data_card.get('examples', {}).get('rejected', '?')}.",
        "De-identification: " + (f"on, {redactions.get('total', 0)} placeholders inserted."
                                 if redactions.get("enabled") else "**off** for this run."),
    ]
    failed = [name for name, ok in data_card.get("invariants", {}).items() if not ok]
    lines.append("Data card checks: " + ("all passed." if not failed else "FAILED: " + ", ".join(failed)))
    return lines


def _training_section(recipe: Recipe, metrics: dict[str, Any] | None) -> list[str]:
    quant = (f"4-bit {recipe.model.quant_type} base weights (QLoRA)" if recipe.model.load_in_4bit
             else "full-precision base weights")
    targets = recipe.lora.target_modules
    lines = [
        f"LoRA r={recipe.lora.r}, alpha={recipe.lora.alpha}, dropout={recipe.lora.dropout}, targets: "
        f"{targets if isinstance(targets, str) else ', '.join(targets)}"
        f"; trained on {quant}, loss on the model's turns only"
        f"{'' if recipe.train.assistant_only_loss else ' (disabled: loss on whole conversations)'}.",
        f"Learning rate {recipe.train.learning_rate:g}, {recipe.train.lr_scheduler_type} schedule, effective batch "
        f"{recipe.train.per_device_train_batch_size * recipe.train.gradient_accumulation_steps}, max length "
        f"{recipe.train.max_length} tokens. The exact recipe is `recipe.resolved.yaml` in this directory.",
    ]
    if metrics:
        parts = [f"{metrics.get('global_steps', '?')} optimizer steps"]
        if metrics.get("train_loss") is not None:
            parts.append(f"final training loss {metrics['train_loss']:.3f}")
        if metrics.get("eval_loss") is not None:
            parts.append(f"validation loss {metrics['eval_loss']:.3f}")
        lines.append("Training: " + ", ".join(parts) + ".")
    return lines


def _eval_section(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return ["No evaluation report yet. Run `medtune eval RECIPE`, then `medtune export RECIPE --refresh-card` "
                "to add the before/after results here."]
    lines = [
        f"Held-out test split, {report.get('examples', '?')} examples, greedy decoding, measured through the "
        "serving API. Loss: mean NLL of reference answer tokens (lower is better); chrF: character n-gram "
        "overlap of generated and reference answers (higher is better).",
        "",
        "| group | n | loss base | loss tuned | chrF base | chrF tuned |",
        "|---|---|---|---|---|---|",
    ]
    for group, metrics in report.get("metrics", {}).items():
        base, tuned = metrics.get("base") or {}, metrics.get("tuned") or {}
        if not tuned:
            continue
        lines.append(f"| {group} | {tuned.get('examples', '?')} | {_number(base.get('loss'), '.3f')} | "
                     f"{_number(tuned.get('loss'), '.3f')} | {_number(base.get('chrf'), '.1f')} | "
                     f"{_number(tuned.get('chrf'), '.1f')} |")
    return lines


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "–"


def _merge_section(merge: dict[str, Any]) -> list[str]:
    saved = merge.get("saved_vs_base_plus_adapter", {})
    lines = [
        "The adapter was merged into full-precision base weights. On held-out prompts the saved checkpoint "
        f"differs from base+adapter by at most {saved.get('max_abs_logit_diff', float('nan')):.2e} in any logit "
        f"(logits span ±{merge.get('logit_scale', float('nan')):.1f}); greedy answers identical: "
        f"{saved.get('greedy_identical', '?')}.",
    ]
    drift = merge.get("drift_vs_4bit_training_model")
    if drift:
        lines.append(
            "Training used 4-bit base weights, so this full-precision merge is not exactly the model that was "
            f"trained: measured drift max |Δlogit| {drift['max_abs_logit_diff']:.3f}, mean "
            f"{drift['mean_abs_logit_diff']:.4f}, top-1 agreement {drift['top1_agreement']:.1%}, greedy answers "
            f"identical {drift['greedy_identical']}. The evaluation above measured this merged model."
        )
    return lines


def _files_section(formats: dict[str, Any]) -> list[str]:
    lines = [
        "| path | what | load with |",
        "|---|---|---|",
        "| `./` | merged Hugging Face checkpoint (safetensors) | `AutoModelForCausalLM` / "
        "`AutoModelForImageTextToText`, `vllm serve DIR` |",
    ]
    if "lora" in formats:
        lora = formats["lora"]
        lines.append(f"| `{lora['dir']}/` | the LoRA adapter alone (language model, r={lora['rank']}) | "
                     f"`vllm serve BASE --enable-lora --max-lora-rank {max(lora['rank'], 8)} --lora-modules "
                     f"NAME={lora['dir']}`, PEFT |")
    if "gguf" in formats:
        gguf = formats["gguf"]
        lines.append(f"| `{gguf['file']}` | GGUF ({gguf['outtype']}, text model) and an Ollama `Modelfile` | "
                     f"llama.cpp, `ollama create NAME -f {gguf['dir']}/Modelfile` |")
    lines += ["", "`manifest.json` lists the sha256 of every file; `medtune export --verify DIR` re-checks them."]
    return lines


def render_model_card(recipe: Recipe, merge: dict[str, Any], formats: dict[str, Any]) -> str:
    """The card's Markdown for the export of `recipe`."""
    data_card = _read_json(recipe.data_dir / "data_card.json")
    metrics = _read_json(recipe.adapter_dir / "training_metrics.json")
    report = _read_json(recipe.eval_dir / "report.json")
    languages = _languages(recipe, data_card)
    language_text = ", ".join(LANGUAGE_NAMES.get(code, code) for code in languages) or "the clinic's languages"
    sections = [
        _front_matter(recipe, languages),
        f"# {recipe.name}",
        "",
        f"`{recipe.model.base}` adapted with a LoRA adapter to the clinical language of {language_text} clinics, "
        "then merged into full-precision weights. Made with medtune.",
        "",
        "## Intended use and limits",
        "",
        *INTENDED_USE,
        "",
        "## Base model",
        "",
        f"`{recipe.model.base}`" + (f" (revision `{recipe.model.revision}`)" if recipe.model.revision else "")
        + ". Chat format: Gemma's (`<start_of_turn>user|model … <end_of_turn>`; a system message is folded into "
        "the first user turn); generation stops on `<end_of_turn>`.",
        "",
        "## Training data",
        "",
        *_data_section(data_card),
        "",
        "## Training",
        "",
        *_training_section(recipe, metrics),
        "",
        "## Evaluation",
        "",
        *_eval_section(report),
        "",
        "## Merge check",
        "",
        *_merge_section(merge),
        "",
        "## Files",
        "",
        *_files_section(formats),
        "",
        "## License",
        "",
        f"A derivative of `{recipe.model.base}`, provided under and subject to the Health AI Developer "
        f"Foundations Terms of Use ({HAI_DEF_TERMS}); see `NOTICE`.",
    ]
    return "\n".join(sections) + "\n"
