"""Shared fixtures: one tiny Gemma 3 model, one prepared dataset and one short training run per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetune.recipe import TinyModelConfig
    from finetune.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", TinyModelConfig(seed=0))


@pytest.fixture(scope="session")
def tiny_image_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetune.recipe import TinyModelConfig
    from finetune.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-mm") / "model", TinyModelConfig(variant="image_text"))


def make_recipe(output_dir: Path, base: Path, **sections: dict) -> "Recipe":  # noqa: F821, UP037
    """A short CPU recipe around the tiny model; `sections` override recipe sections."""
    from finetune.recipe import validate_recipe

    raw: dict = {
        "name": "test",
        "output_dir": str(output_dir),
        "model": {"base": str(base)},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_steps": 12, "learning_rate": 3e-3, "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1, "max_length": 1024, "gradient_checkpointing": False,
            "logging_steps": 4, "warmup_ratio": 0.0,
        },
        "eval": {"max_examples": 6, "max_new_tokens": 8},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return validate_recipe(raw)


@pytest.fixture(scope="session")
def recipe_factory():
    """`make_recipe` for tests that need a recipe of their own."""
    return make_recipe


@pytest.fixture(scope="session")
def trained_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """Prepared bundled data + a 12-step QLoRA adapter on the tiny model."""
    from finetune.pipeline import prepare_stage
    from finetune.train import train

    recipe = make_recipe(tmp_path_factory.mktemp("run"), tiny_model_dir)
    prepare_stage(recipe)
    train(recipe)
    return recipe
