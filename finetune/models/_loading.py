"""Loading a Gemma 3 base: the right class for its config, 4-bit for training, full precision for merging."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import DistributedType
from peft import LoraConfig as PeftLoraConfig
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)

from finetune.models._gemma import resolve_compute_dtype
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


def load_processor(model_path: str, revision: str | None = None) -> ProcessorMixin:
    """Tokenizer + image processor, for training the image+text model on rows with images."""
    processor = AutoProcessor.from_pretrained(model_path, revision=revision)
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def process_state() -> PartialState:
    """This process's place in an `accelerate launch` (gloo on CPU, so DDP also runs without GPUs)."""
    return PartialState(cpu=device_type() == "cpu")


def training_device_map() -> dict[str, Any] | None:
    """Where each process puts the model: its own GPU under DDP, nowhere yet under FSDP/DeepSpeed (they shard it)."""
    state = process_state()
    if state.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return None
    if torch.cuda.is_available():
        return {"": state.local_process_index}
    return {"": "cpu"}


QUANT_BLOCK = 64  # bitsandbytes quantizes 4-bit weights in blocks of 64 values


def unquantized_modules(model_config: Any) -> list[str] | None:
    """Modules kept out of 4-bit: a vision tower narrower than one quantization block (tiny test models only;
    bitsandbytes' CPU kernel cannot run such layers). None keeps transformers' defaults (lm_head)."""
    vision = getattr(model_config, "vision_config", None)
    if vision is not None and vision.hidden_size < QUANT_BLOCK:
        return ["lm_head", "model.vision_tower"]
    return None


def quantization_config(
    config: ModelConfig, compute_dtype: torch.dtype, skip_modules: list[str] | None = None
) -> BitsAndBytesConfig:
    """nf4 weights; stored in the compute dtype, which is what lets FSDP shard them when it is bfloat16."""
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_quant_storage=compute_dtype,
        llm_int8_skip_modules=skip_modules,
    )


def load_for_training(config: ModelConfig) -> PreTrainedModel:
    """The base as QLoRA trains it: 4-bit weights (when asked), compute in bf16 on GPU and fp32 on CPU.

    The KV cache is off: training never reuses it, and with a cache transformers cannot keep packed examples apart.
    """
    device = device_type()
    compute_dtype = resolve_compute_dtype(config.compute_dtype, device)
    kwargs: dict[str, Any] = {
        "dtype": compute_dtype,
        "attn_implementation": config.attn_implementation,
        "revision": config.revision,
        "device_map": training_device_map(),
    }
    if config.load_in_4bit:
        skip = unquantized_modules(AutoConfig.from_pretrained(config.base, revision=config.revision))
        kwargs["quantization_config"] = quantization_config(config, compute_dtype, skip)
    model = model_class(config.base, config.revision).from_pretrained(config.base, **kwargs)
    model.config.use_cache = False
    model.config.get_text_config().use_cache = False
    keep_4bit_layers_differentiable(model)
    return model


def keep_4bit_layers_differentiable(model: torch.nn.Module) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference in the middle of training.

    On CPUs with AVX512-BF16, bitsandbytes (0.50) repacks each 4-bit layer for inference on its first no-grad
    eval forward, with its scales rounded to bf16, and keeps it so until a state dict is taken. The packed kernel
    has no backward: a training step between an evaluation and the next checkpoint sends no gradient through the
    frozen weights, so the adapter layers below the top one train on wrong gradients; and every repack and unpack
    re-quantizes the scales, so a resumed run would not compute what the uninterrupted one did. Returns the number
    of layers kept on the differentiable path.
    """
    layers = [m for m in model.modules() if getattr(m, "support_avx512bf16_for_cpu", False)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


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
