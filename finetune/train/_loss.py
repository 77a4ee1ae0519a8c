"""The training loss over Gemma's 262k-token vocabulary, computed the cheapest way the platform allows.

Only answer tokens are trained on, so only their logits are needed. Three ways to get their cross-entropy:

- `torch` (CPU): the model's own forward projects only the answer positions (`logits_to_keep` as a mask), then one
  fused `cross_entropy`. On a CPU this beats TRL's chunked log-prob head, whose torch fallback scores every position
  of the row and keeps several row-sized temporaries per tile for entropy and token accuracy.
- `liger` (CUDA, `pip install "medtune[gpu]"`): Liger Kernel's fused linear cross-entropy on the answer positions'
  hidden states; the logits never exist in full, chunks of about (tokens × hidden) elements do.
- `trl`: TRL's chunked log-prob head (`fused_lm_head=True`), Triton on CUDA; it also logs entropy and token accuracy.

`auto` picks liger on CUDA when it is installed and the model is not sharded (FSDP/DeepSpeed shard the LM head that
liger reads outside the forward), trl on other GPUs, torch on CPU.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.nn.functional as F

LOSS_KERNELS = ("auto", "torch", "trl", "liger")
IGNORE_INDEX = -100


class LossKernelError(ValueError):
    """A loss kernel was asked for where it cannot run."""


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def resolve_loss_kernel(requested: str, device: str, sharded: bool = False, liger: bool | None = None) -> str:
    """The kernel `train.loss_kernel` stands for on this device (see the module docstring)."""
    if requested not in LOSS_KERNELS:
        raise LossKernelError(f"train.loss_kernel={requested!r}: expected one of {', '.join(LOSS_KERNELS)}")
    has_liger = liger_installed() if liger is None else liger
    if requested == "liger":
        if device != "cuda":
            raise LossKernelError("train.loss_kernel=liger needs a CUDA GPU (Triton kernels); use auto or torch on CPU")
        if not has_liger:
            raise LossKernelError('train.loss_kernel=liger: Liger Kernel is not installed; pip install "medtune[gpu]"')
        if sharded:
            raise LossKernelError("train.loss_kernel=liger reads the LM head outside the forward, which FSDP and "
                                  "DeepSpeed shard; use train.loss_kernel=trl (or auto) with them")
        return "liger"
    if requested != "auto":
        return requested
    if device == "cuda":
        return "liger" if has_liger and not sharded else "trl"
    return "torch"


def answer_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions whose next token is trained on (a `(batch, seq)` mask) and those next tokens, in mask order."""
    following = labels[:, 1:]
    trained = following != IGNORE_INDEX
    return F.pad(trained, (0, 1), value=False), following[trained]


def _without_labels(inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in inputs.items() if key != "labels"} | {"use_cache": False}


def answer_nll_sum(model: torch.nn.Module, inputs: dict[str, Any], kernel: str) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the answer tokens, and how many there are.

    `model` is whatever the trainer calls (a DDP or PEFT wrapper included), so gradients flow as in its own forward.
    """
    keep, targets = answer_positions(inputs["labels"])
    if kernel == "torch":
        logits = model(**_without_labels(inputs), logits_to_keep=keep).logits  # (answer tokens, vocab)
        return F.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())
    if kernel == "liger":
        return _liger_nll_sum(model, inputs, keep, targets), int(targets.numel())
    raise LossKernelError(f"answer_nll_sum has no {kernel!r} kernel")


def _language_model(model: torch.nn.Module) -> Any:
    """The transformers model inside DDP/PEFT wrappers (where the LM head and its config live)."""
    inner = getattr(model, "module", model)
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def _liger_nll_sum(model: torch.nn.Module, inputs: dict[str, Any], keep: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    language_model = _language_model(model)
    # One position's logits are computed (and ignored); the answer positions go through liger from the hidden states.
    outputs = model(**_without_labels(inputs), logits_to_keep=1, output_hidden_states=True)
    hidden = outputs.hidden_states[-1][keep]  # the final-norm output: transformers ties it to last_hidden_state
    head = language_model.get_output_embeddings()
    softcap = getattr(language_model.config.get_text_config(), "final_logit_softcapping", None)
    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum", softcap=softcap)
    return loss(head.weight, hidden.to(head.weight.dtype), targets, head.bias)
