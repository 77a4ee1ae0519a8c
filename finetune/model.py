"""Loading a Gemma 3 base: the right class for its config, 4-bit for training, full precision for merging."""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from finetune.gemma import resolve_compute_dtype
from finetune.recipe import LoraConfig, ModelConfig

LANGUAGE_MODEL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def device_type() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_image_text(model_path: str, revision: str | None = None) -> bool:
    """medgemma-4b-it is `gemma3` (image+text); medgemma-27b-text-it is `gemma3_text`."""
    config = AutoConfig.from_pretrained(model_path, revision=revision)
    return getattr(config, "vision_config", None) is not None


def model_class(model_path: str, revision: str | None = None) -> type:
    return AutoModelForImageTextToText if is_image_text(model_path, revision) else AutoModelForCausalLM


def load_tokenizer(model_path: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(config: ModelConfig, compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_quant_storage=compute_dtype,
    )


def load_for_training(config: ModelConfig) -> PreTrainedModel:
    """The base as QLoRA trains it: 4-bit weights (when asked), compute in bf16 on GPU and fp32 on CPU."""
    device = device_type()
    compute_dtype = resolve_compute_dtype(config.compute_dtype, device)
    kwargs: dict[str, Any] = {
        "dtype": compute_dtype,
        "attn_implementation": config.attn_implementation,
        "revision": config.revision,
        "device_map": {"": 0} if device == "cuda" else {"": "cpu"},
    }
    if config.load_in_4bit:
        kwargs["quantization_config"] = quantization_config(config, compute_dtype)
    model = model_class(config.base, config.revision).from_pretrained(config.base, **kwargs)
    model.config.use_cache = False
    return model


def load_full_precision(
    model_path: str, dtype: torch.dtype | str = "auto", device: str | None = None, revision: str | None = None
) -> PreTrainedModel:
    """Unquantized weights, as merging and serving need them."""
    model = model_class(model_path, revision).from_pretrained(
        model_path, dtype=dtype, attn_implementation="eager", revision=revision,
        device_map={"": device or device_type()},
    )
    model.eval()
    return model


def lora_config(model: PreTrainedModel, config: LoraConfig) -> PeftLoraConfig:
    """LoRA targets built for the class that was loaded.

    The multimodal class names its text weights `model.language_model.*`; a regex limited to those keeps the
    SigLIP tower and the projector frozen. `lm_head`/`embed_tokens` are never copied into the adapter (that
    would add ~0.7B parameters for Gemma's 262k vocabulary).
    """
    is_multimodal = getattr(model.config, "vision_config", None) is not None
    targets: str | list[str]
    all_linear = config.target_modules == "all-linear"
    names = LANGUAGE_MODEL_PROJECTIONS if all_linear else tuple(config.target_modules)
    if is_multimodal and config.language_model_only:
        targets = rf".*language_model.*\.({'|'.join(names)})"
    elif config.target_modules == "all-linear":
        targets = "all-linear"
    else:
        targets = list(names)
    return PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
