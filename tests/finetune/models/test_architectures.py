"""MedGemma architectures by hub id: the class each id builds, and the planner's shape of it against the real model
instantiated on the meta device (no memory, no download)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import Gemma3ForCausalLM, Gemma3ForConditionalGeneration

from finetune.models._architectures import KNOWN, config_for
from finetune.train._memory_plan import Shape

IMAGE_TEXT = ("google/medgemma-4b-it", "google/medgemma-1.5-4b-it", "google/medgemma-27b-it")
# Parameter counts published for them (billions): the whole model, and medgemma-1.5-4b-it's text decoder alone.
PUBLISHED_BILLIONS = {"google/medgemma-1.5-4b-it": 4.3, "google/medgemma-27b-it": 27.4}
PUBLISHED_LANGUAGE_MODEL_BILLIONS = {"google/medgemma-1.5-4b-it": 3.88}


def _meta_model(model_id: str) -> nn.Module:
    config = config_for(model_id)
    model_class = Gemma3ForConditionalGeneration if model_id in IMAGE_TEXT else Gemma3ForCausalLM
    with torch.device("meta"):
        return model_class(config)


def _linear_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def test_every_image_text_id_is_gemma3_for_conditional_generation() -> None:
    assert set(IMAGE_TEXT) < set(KNOWN)
    for model_id in IMAGE_TEXT:
        config = config_for(model_id)
        assert config.model_type == "gemma3", model_id
        assert config.vision_config.image_size == 896 and config.mm_tokens_per_image == 256
    assert config_for("google/medgemma-27b-text-it").model_type == "gemma3_text"


def test_new_ids_share_the_language_model_of_their_family() -> None:
    def text(model_id: str) -> dict:
        config = config_for(model_id).get_text_config().to_dict()
        return {k: v for k, v in config.items() if k not in ("transformers_version", "architectures")}

    assert text("google/medgemma-1.5-4b-it") == text("google/medgemma-4b-it")
    assert text("google/medgemma-27b-it") == text("google/medgemma-27b-text-it")
    assert Shape.from_config(config_for("google/medgemma-1.5-4b-it")) == Shape.from_config(
        config_for("google/medgemma-4b-it"))


@pytest.mark.parametrize("model_id", [*IMAGE_TEXT, "google/medgemma-27b-text-it"])
def test_planner_shape_counts_the_real_model(model_id: str) -> None:
    """The planner's quantized and bf16 parts, read off the config, are the parameters the model class creates."""
    model = _meta_model(model_id)
    shape = Shape.from_config(config_for(model_id))
    language = model.model.language_model if model_id in IMAGE_TEXT else model.model
    assert _linear_weights(language) == shape.language_linear_params
    if model_id in IMAGE_TEXT:
        # Weights only: the tower's biases and norms (under 0.1%) stay out of the plan.
        assert _linear_weights(model.model.vision_tower) == shape.vision_linear_params
    else:
        assert shape.vision_linear_params == shape.vision_other_params == 0
    planned = shape.language_linear_params + shape.vision_linear_params + shape.vocab * shape.hidden
    planned += shape.vision_other_params
    total = sum(p.numel() for p in model.parameters())
    assert planned == pytest.approx(total, rel=2e-3)
    if model_id in PUBLISHED_BILLIONS:
        assert total / 1e9 == pytest.approx(PUBLISHED_BILLIONS[model_id], abs=0.06)
    if model_id in PUBLISHED_LANGUAGE_MODEL_BILLIONS:
        decoder = sum(p.numel() for p in language.parameters()) / 1e9
        assert decoder == pytest.approx(PUBLISHED_LANGUAGE_MODEL_BILLIONS[model_id], abs=0.006)


def test_27b_image_text_adds_only_the_vision_tower_to_the_text_model() -> None:
    image_text = Shape.from_config(config_for("google/medgemma-27b-it"))
    text = Shape.from_config(config_for("google/medgemma-27b-text-it"))
    assert image_text.language_linear_params == text.language_linear_params
    assert 0.35e9 < image_text.vision_linear_params < 0.45e9
