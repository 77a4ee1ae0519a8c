"""The MedGemma 1.5 4B and 27B image+text recipes: what they load, what `medtune plan` says of each card, their
adapter settings trained for two steps on the tiny model of the same class (Gemma3ForConditionalGeneration), and
continued pretraining (train.objective: completion) on that class with text-only rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from finetune.cli._commands import main
from finetune.recipe._schema import load_recipe
from finetune.train._memory_plan import plan_recipe
from finetune.train._sft import METRICS_NAME, build_trainer, train

RECIPES = Path(__file__).resolve().parents[3] / "recipes"
FAMILY = {
    "medgemma-1.5-4b-ru": "google/medgemma-1.5-4b-it",
    "medgemma-1.5-4b-kk": "google/medgemma-1.5-4b-it",
    "medgemma-1.5-4b-zh": "google/medgemma-1.5-4b-it",
    "medgemma-27b-it-ru": "google/medgemma-27b-it",
}


@pytest.mark.parametrize(("stem", "base"), FAMILY.items())
def test_recipe_is_a_text_only_qlora_adapter_for_one_gpu(stem: str, base: str) -> None:
    recipe = load_recipe(RECIPES / f"{stem}.yaml")
    assert recipe.name == stem and recipe.model.base == base
    assert recipe.model.load_in_4bit and recipe.model.quant_type == "nf4" and recipe.model.double_quant
    assert recipe.model.compute_dtype == "bfloat16"
    assert recipe.lora.language_model_only, "the vision tower and projector stay frozen"
    assert recipe.train.gradient_checkpointing and recipe.train.per_device_train_batch_size == 1
    assert [s.lang for s in recipe.data.sources] == [stem.rsplit("-", 1)[1]]


@pytest.mark.parametrize("stem", [s for s in FAMILY if s.startswith("medgemma-1.5-4b")])
def test_1_5_4b_profiles_fit_8_12_16_and_24_gb(stem: str) -> None:
    report = plan_recipe(load_recipe(RECIPES / f"{stem}.yaml"))
    assert set(report["profiles"]) == {"8gb", "12gb", "16gb", "24gb"}
    assert all(p["fits"] for p in report["profiles"].values())
    assert report["estimate"]["total_gib"] < 8 - 1, "seq 2048, batch 1 fits an 8 GB card with headroom"
    same_shape = plan_recipe(load_recipe(RECIPES / "medgemma-4b-ru.yaml"))
    assert report["estimate"] == same_shape["estimate"]


def test_27b_image_text_needs_a_24_gb_card(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = load_recipe(RECIPES / "medgemma-27b-it-ru.yaml")
    report = plan_recipe(recipe)
    assert set(report["profiles"]) == {"24gb"} and report["profiles"]["24gb"]["fits"]
    assert [size for size, s in report["suggestions"].items() if s["fits"]] == ["24GiB"]
    text_only = plan_recipe(load_recipe(RECIPES / "medgemma-27b-text-ru.yaml"))
    vision_gib = report["estimate"]["weights_gib"] - text_only["estimate"]["weights_gib"]
    assert 0.15 < vision_gib < 0.4, "the 4-bit SigLIP tower and its bf16 embeddings on top of the text model"
    assert main(["plan", str(RECIPES / "medgemma-27b-it-ru.yaml")]) == 0
    assert main(["plan", str(RECIPES / "medgemma-27b-it-ru.yaml"), "--gpu-mem", "16GiB"]) == 1
    assert "16GiB: does not fit" in capsys.readouterr().out


@pytest.mark.parametrize("stem", ["medgemma-1.5-4b-ru", "medgemma-27b-it-ru"])
def test_recipe_adapter_trains_on_the_tiny_image_text_model(
    stem: str, tmp_path: Path, tiny_image_text_dir: Path, short_recipe
) -> None:
    """The recipe's own LoRA and checkpointing settings, on text-only rows, train the language model only."""
    real = load_recipe(RECIPES / f"{stem}.yaml")
    tiny = short_recipe(tmp_path, tiny_image_text_dir, gradient_checkpointing=real.train.gradient_checkpointing,
                        max_grad_norm=real.train.max_grad_norm)
    recipe = tiny.model_copy(update={"lora": real.lora})
    adapter = train(recipe)
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    assert metrics["global_steps"] == 2
    assert all(entry["loss"] > 0 for entry in metrics["log_history"] if "loss" in entry)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (real.lora.r, real.lora.alpha)
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert keys and all("language_model" in key for key in keys)
    assert not any("vision_tower" in key or "multi_modal_projector" in key for key in keys)
    projections = {key.split(".lora_")[0].rsplit(".", 1)[1] for key in keys}
    assert projections == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


NOTES = [
    "Пациент жалуется на кашель три дня. Температура 37,8. Хрипов в лёгких нет, дыхание везикулярное.",
    "Науқастың қан қысымы 150/95 мм сын. бағ. Бас ауруы мен жүрек айнуы бар.",
    "患者咳嗽两周，胸片未见异常。建议一个月后复查血常规。",
    "Гемоглобин 98 г/л, ниже нормы. Рекомендован контроль общего анализа крови через месяц.",
]


def test_continued_pretraining_on_the_image_text_class_with_text_rows(
    tmp_path: Path, tiny_image_text_dir: Path
) -> None:
    """train.objective: completion with the 27B image+text recipe: raw text rows, no image inputs, and every token
    but the row starts (BOS) and padding in the loss."""
    overrides = [
        f"output_dir={tmp_path}", f"model.base={tiny_image_text_dir}", "model.compute_dtype=auto",
        "data.sources=[{lang: ru, tasks: [text]}]", "train.objective=completion", "train.max_steps=2",
        "train.per_device_train_batch_size=2", "train.gradient_accumulation_steps=1", "train.max_length=64",
        "train.logging_steps=1",
    ]
    recipe = load_recipe(RECIPES / "medgemma-27b-it-ru.yaml", overrides)
    recipe.data_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"text": note, "meta": {"n": n}}, ensure_ascii=False) for n, note in enumerate(NOTES * 3)]
    (recipe.data_dir / "train.jsonl").write_text("\n".join(rows[:10]) + "\n", encoding="utf-8")
    (recipe.data_dir / "validation.jsonl").write_text("\n".join(rows[10:]) + "\n", encoding="utf-8")

    trainer = build_trainer(recipe)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "pixel_values" not in batch
    assert not bool(batch.get("token_type_ids", torch.zeros(1)).any()), "no token is an image token"
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    ids, labels = batch["input_ids"], batch["labels"]
    trained = labels != -100
    assert torch.equal(labels[trained], ids[trained])
    assert set(ids[~trained].tolist()) <= {tokenizer.bos_token_id, tokenizer.pad_token_id}
    assert int(trained.sum()) > 0.8 * ids.numel(), "packed rows: nearly every position is a trained token"

    adapter = train(recipe)
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    assert metrics["objective"] == "completion" and metrics["global_steps"] == 2
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert keys and all("language_model" in key for key in keys)
