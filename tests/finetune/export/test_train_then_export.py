"""QLoRA training on the tiny model, the assistant-only loss mask, and the full-precision merge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTTrainer

from data_prep.files import sha256_file
from finetune.export._bundle import MERGE_REPORT_NAME, export
from finetune.models._loading import load_for_training, lora_config
from finetune.recipe._schema import RESOLVED_RECIPE_NAME, LoraConfig, ModelConfig
from finetune.train._sft import METRICS_NAME, PROVENANCE_NAME, load_split, sft_config


def test_base_is_loaded_in_4bit_nf4(tiny_model_dir: Path) -> None:
    model = load_for_training(ModelConfig(base=str(tiny_model_dir)))
    linear_4bit = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert len(linear_4bit) == 7 * model.config.num_hidden_layers
    assert {m.weight.quant_type for m in linear_4bit} == {"nf4"}


def test_loss_mask_is_non_empty_and_excludes_every_prompt_token(trained_recipe, tmp_path: Path) -> None:
    recipe = trained_recipe
    raw = load_split(recipe.data_dir, "train")
    tokenizer = AutoTokenizer.from_pretrained(recipe.model.base)
    model = load_for_training(recipe.model)
    trainer = SFTTrainer(
        model=model, args=sft_config(recipe, tmp_path / "ckpt", has_eval=False, packing=False),
        train_dataset=raw.select(range(8)),
        processing_class=tokenizer, peft_config=lora_config(model, recipe.lora),
    )
    for index, row in enumerate(trainer.train_dataset):
        messages = raw[index]["messages"]
        prompt_ids = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True,
                                                   return_dict=False)
        labels = row["labels"]
        trained = [i for i, label in enumerate(labels) if label != -100]
        assert trained, "the mask must not be empty"
        assert min(trained) == len(prompt_ids), "every prompt token is excluded, the answer starts the mask"
        answer = tokenizer.decode([row["input_ids"][i] for i in trained])
        assert answer.startswith(messages[-1]["content"].strip()[:20])
        assert "<end_of_turn>" in answer, "the end-of-turn token is trained so the model learns to stop"


def test_adapter_directory_holds_provenance(trained_recipe) -> None:
    adapter = trained_recipe.adapter_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", RESOLVED_RECIPE_NAME, METRICS_NAME,
                 PROVENANCE_NAME, "tokenizer_config.json"):
        assert (adapter / name).is_file(), name
    provenance = json.loads((adapter / PROVENANCE_NAME).read_text())
    assert provenance["data_card_sha256"] == sha256_file(trained_recipe.data_dir / "data_card.json")
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    assert metrics["global_steps"] == 12
    losses = [entry["loss"] for entry in metrics["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0], "training lowers the loss"
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert keys and all("lora_" in key for key in keys)
    assert not any("embed_tokens" in key or "lm_head" in key for key in keys)


def test_wandb_logging_works_offline(
    tiny_model_dir: Path, short_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetune.train._sft import train

    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline because the recipe says so (its default)
    recipe = short_recipe(tmp_path / "run", tiny_model_dir, model={"load_in_4bit": False}, report_to=["wandb"],
                          run_name="ru-cardiology-v1", wandb_project="clinic-ru")
    adapter = train(recipe)
    import wandb

    wandb.finish()  # what the end of the process does: flush the offline record
    runs = list((adapter / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
    assert not list(tmp_path.glob("wandb")), "wandb writes inside the adapter directory only"
    deadline = time.monotonic() + 60  # wandb's writer process may still be flushing the offline record
    while True:
        record = b"".join(path.read_bytes() for path in runs[0].rglob("*.wandb"))
        if (b"ru-cardiology-v1" in record and b"clinic-ru" in record) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert b"ru-cardiology-v1" in record and b"clinic-ru" in record, "project and run names come from the recipe"


def test_image_text_lora_leaves_vision_tower_and_projector_frozen(tiny_image_text_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_image_text_dir)
    peft_model = get_peft_model(model, lora_config(model, LoraConfig(r=4, alpha=8)))
    adapted = [name for name, _ in peft_model.named_parameters() if "lora_" in name]
    assert adapted and all("language_model" in name for name in adapted)
    assert not any("vision_tower" in name or "multi_modal_projector" in name for name in adapted)


@pytest.fixture(scope="module")
def exported(trained_recipe) -> Path:
    return export(trained_recipe)


def test_merged_logits_equal_base_plus_adapter(trained_recipe, exported: Path) -> None:
    report = json.loads((exported / MERGE_REPORT_NAME).read_text())
    assert report["max_abs_logit_diff_fp32"] < 1e-4
    tokenizer = AutoTokenizer.from_pretrained(exported)
    rows = [json.loads(line) for line in (trained_recipe.data_dir / "test.jsonl").read_text().splitlines()[:3]]
    base = AutoModelForCausalLM.from_pretrained(trained_recipe.model.base, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(trained_recipe.adapter_dir)).eval()
    merged = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    assert type(merged).__name__ == "Gemma3ForCausalLM"
    for row in rows:
        batch = tokenizer.apply_chat_template(row["messages"], return_tensors="pt", return_dict=True)
        with torch.no_grad():
            reference = with_adapter(**batch).logits
            got = merged(**batch).logits
            plain_base = base.get_base_model()(**batch).logits if hasattr(base, "get_base_model") else None
        assert torch.allclose(reference, got, atol=1e-4, rtol=0)
        if plain_base is not None:
            assert not torch.allclose(plain_base, got, atol=1e-3), "the adapter changed the model"


def test_export_holds_what_other_services_need(exported: Path) -> None:
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer_config.json",
                 "chat_template.jinja", "NOTICE", RESOLVED_RECIPE_NAME, MERGE_REPORT_NAME):
        assert (exported / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(exported)
    generation = json.loads((exported / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in generation["eos_token_id"]
    assert "Health AI Developer Foundations" in (exported / "NOTICE").read_text()
    with safe_open(str(exported / "model.safetensors"), "pt") as weights:
        assert not any("lora_" in key for key in weights.keys())  # noqa: SIM118
