"""Gemma 3 models of any shape with random weights, built straight into 4-bit without a checkpoint.

Benchmarks need the exact MedGemma shapes, not their weights: building on the meta device and creating each
linear layer's weights already quantized keeps a 27B model inside the memory its QLoRA run will use.
"""

from __future__ import annotations

import bitsandbytes as bnb
import torch
from accelerate import init_empty_weights
from torch import nn
from transformers import Gemma3ForCausalLM, Gemma3ForConditionalGeneration, PretrainedConfig, PreTrainedModel

INIT_STD = 0.02


def _quantized_linear(linear: nn.Linear, device: torch.device, compute_dtype: torch.dtype, quant_type: str,
                      double_quant: bool, generator: torch.Generator) -> bnb.nn.Linear4bit:
    layer = bnb.nn.Linear4bit(
        linear.in_features, linear.out_features, bias=linear.bias is not None, compute_dtype=compute_dtype,
        compress_statistics=double_quant, quant_type=quant_type, quant_storage=compute_dtype, device="meta",
    )
    weight = torch.empty(linear.out_features, linear.in_features, dtype=compute_dtype, device=device)
    weight.normal_(0.0, INIT_STD, generator=generator)
    layer.weight = bnb.nn.Params4bit(
        weight, requires_grad=False, quant_type=quant_type, compress_statistics=double_quant,
        quant_storage=compute_dtype,
    ).to(device)
    if linear.bias is not None:
        layer.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=compute_dtype, device=device))
    return layer


def _materialize(module: nn.Module, device: torch.device, dtype: torch.dtype, generator: torch.Generator) -> None:
    """Give every parameter still on the meta device real, random (or, for norms, neutral) values."""
    for name, param in list(module.named_parameters(recurse=False)):
        if param.device.type != "meta":
            continue
        value = torch.empty(param.shape, dtype=dtype, device=device)
        if "norm" in type(module).__name__.lower():
            value.zero_()  # Gemma's RMSNorm scales by (1 + weight)
        else:
            value.normal_(0.0, INIT_STD, generator=generator)
        setattr(module, name, nn.Parameter(value, requires_grad=False))


def build_random_qlora_base(
    config: PretrainedConfig,
    device: str | torch.device = "cuda",
    compute_dtype: torch.dtype = torch.bfloat16,
    quant_type: str = "nf4",
    double_quant: bool = True,
    seed: int = 0,
) -> PreTrainedModel:
    """A Gemma 3 model of `config`'s shape whose linear layers are 4-bit bnb layers with random weights."""
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    model_class = Gemma3ForConditionalGeneration if hasattr(config, "vision_config") else Gemma3ForCausalLM
    config._attn_implementation = "eager"
    with init_empty_weights(include_buffers=False):
        model = model_class(config)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and child_name != "lm_head":
                quantized = _quantized_linear(child, device, compute_dtype, quant_type, double_quant, generator)
                setattr(parent, child_name, quantized)
    for module in model.modules():
        _materialize(module, device, compute_dtype, generator)
    model.tie_weights()
    for buffer_owner in model.modules():
        for name, buffer in list(buffer_owner.named_buffers(recurse=False)):
            if buffer.device != device:
                buffer_owner.register_buffer(name, buffer.to(device), persistent=False)
    model.is_loaded_in_4bit = True
    model.config.use_cache = False
    return model.eval()
