"""The recipe schema: one pydantic model per section (model, data, lora, train, export, serve, eval), overrides,
profiles and the resolved recipe each stage writes."""

from finetune.recipe._eval import MIN_PAIRED_EXAMPLES, SUITE_FORMATS, SuiteConfig, suite_label
from finetune.recipe._schema import (
    LoraConfig,
    ModelConfig,
    Recipe,
    RecipeError,
    TinyModelConfig,
    apply_profile,
    load_recipe,
    refuse_float16,
    validate_recipe,
    write_resolved,
)

__all__ = [
    "MIN_PAIRED_EXAMPLES",
    "SUITE_FORMATS",
    "LoraConfig",
    "ModelConfig",
    "Recipe",
    "RecipeError",
    "SuiteConfig",
    "TinyModelConfig",
    "apply_profile",
    "load_recipe",
    "refuse_float16",
    "suite_label",
    "validate_recipe",
    "write_resolved",
]
