"""Continued pretraining (train.objective: completion) on the tiny model: raw text rows, loss on every token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.stages import prepare_stage
from finetune.train._completion import load_text_rows
from finetune.train._data import TrainingDataError
from finetune.train._sft import build_trainer, train

TEXT_SOURCES = [{"lang": lang, "tasks": ["text"]} for lang in ("ru", "kk", "zh")]


@pytest.fixture(scope="module")
def completion_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, recipe_factory):
    recipe = recipe_factory(
        tmp_path_factory.mktemp("cpt"), tiny_model_dir,
        data={"sources": TEXT_SOURCES, "split": {"validation": 0.15, "test": 0.0, "seed": 1},
              "quality": {"max_tokens": None}},
        train={"objective": "completion", "max_steps": 16, "learning_rate": 1e-2, "max_length": 128,
               "eval_steps": 16, "early_stopping_patience": None, "load_best_model_at_end": False},
        lora={"r": 32, "alpha": 32},
    )
    prepare_stage(recipe)
    return recipe


def test_prepare_writes_text_rows_grouped_by_patient(completion_recipe) -> None:
    rows = {split: [json.loads(line) for line in (completion_recipe.data_dir / f"{split}.jsonl").open()]
            for split in ("train", "validation")}
    assert rows["train"] and rows["validation"]
    for split_rows in rows.values():
        for row in split_rows:
            assert set(row) == {"text", "meta"} and row["meta"]["task"] == "text" and row["text"].strip()
    groups = {split: {row["meta"]["group"] for row in split_rows} for split, split_rows in rows.items()}
    assert not groups["train"] & groups["validation"]
    card = json.loads((completion_recipe.data_dir / "data_card.json").read_text(encoding="utf-8"))
    assert card["examples"]["written"] == sum(len(r) for r in rows.values())


def test_completion_lowers_held_out_loss_and_trains_every_token(completion_recipe) -> None:
    trainer = build_trainer(completion_recipe)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    real = batch["input_ids"] != trainer.processing_class.pad_token_id
    # every real token but the first of each packed text is a target: nothing is masked as a prompt
    assert int((batch["labels"] != -100).sum()) >= int(real.sum()) - len(batch.get("seq_lengths", [[0]])[0]) - 1
    before = trainer.evaluate()["eval_loss"]
    adapter = train(completion_recipe)
    metrics = json.loads((adapter / "training_metrics.json").read_text(encoding="utf-8"))
    assert metrics["objective"] == "completion" and metrics["packing"] is True
    assert metrics["eval_loss"] < before - 0.3, (before, metrics["eval_loss"])
    assert (adapter / "adapter_model.safetensors").is_file()


def test_chat_rows_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "Жалобы на кашель."}\n{"messages": [{"role": "user", "content": "x"}]}\n',
                    encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"train\.jsonl:2: a chat example.*tasks: \[text\]"):
        load_text_rows(path)
    path.write_text('{"text": "  "}\n', encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"train\.jsonl:1\.text must be a non-empty string"):
        load_text_rows(path)


def test_planner_counts_trained_embeddings() -> None:
    from finetune.recipe import load_recipe
    from finetune.train import plan_recipe

    recipe = Path(__file__).resolve().parents[3] / "recipes" / "medgemma-4b-ru.yaml"
    plain = plan_recipe(load_recipe(recipe))["estimate"]
    with_embeddings = plan_recipe(load_recipe(recipe, ["lora.train_embeddings=true"]))["estimate"]
    # Gemma 3 4B: 262,208 x 2,560 embedding parameters, each with a fp32 master copy and optimizer state
    extra = with_embeddings["lora_gib"] + with_embeddings["paged_optimizer_gib"] - plain["lora_gib"] - \
        plain["paged_optimizer_gib"]
    assert 262_208 * 2_560 * 5 / 2**30 < extra < 262_208 * 2_560 * 16 / 2**30
    assert with_embeddings["total_gib"] > plain["total_gib"] + 2
