"""Memory planner: expected peak GPU memory of a QLoRA recipe, from the model config alone (no weights).

The estimate is what `torch.cuda.max_memory_allocated` reports during a training step (the CUDA context, about
0.5 GiB, comes on top). It is split into the parts a user can act on: 4-bit weights, LoRA parameters with their
optimizer state, activations (with or without gradient checkpointing), logits (Gemma's ~262k vocabulary makes
full logits cost ~1 GiB per 1k tokens in fp32; TRL's chunked log-prob head avoids materialising them) and overhead.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from transformers import PretrainedConfig

if TYPE_CHECKING:
    from finetune.recipe import Recipe

GIB = 1024**3
NF4_BYTES_PER_PARAM = 0.5 + 4 / 64  # 4-bit codes + one fp32 absmax per 64-weight block
NF4_DOUBLE_QUANT_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)  # absmax itself quantized to 8 bits
OPTIMIZER_BYTES = {"adamw_torch": 8.0, "adamw_torch_fused": 8.0, "paged_adamw_8bit": 2.0, "adamw_8bit": 2.0,
                   "paged_adamw_32bit": 8.0, "adafactor": 4.0, "sgd": 0.0}
LORA_MASTER_BYTES = 4 + 4  # PEFT keeps adapter weights and their gradients in fp32
# bf16 logits (2 bytes) + their fp32 upcast (4) and log-softmax (4) for the loss.
FULL_LOGITS_BYTES_PER_ELEMENT = 10
# bitsandbytes' paged optimizers keep their state in managed memory that can be evicted to the host: reported
# apart, not in the allocator peak.
PAGED_OPTIMIZERS = frozenset({"paged_adamw_8bit", "paged_adamw_32bit"})


@dataclass(frozen=True)
class Shape:
    """The sizes that decide memory, read off a Gemma 3 config."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vision_linear_params: int
    vision_other_params: int

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> Shape:
        text = config.get_text_config()
        vision = getattr(config, "vision_config", None)
        vision_linear = vision_other = 0
        if vision is not None:
            v_h, v_i, v_l = vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers
            vision_linear = v_l * (4 * v_h * v_h + 2 * v_h * v_i)
            patches = (vision.image_size // vision.patch_size) ** 2
            vision_other = 3 * vision.patch_size**2 * v_h + patches * v_h + v_h * text.hidden_size
        return cls(
            vocab=text.vocab_size, hidden=text.hidden_size, intermediate=text.intermediate_size,
            layers=text.num_hidden_layers, heads=text.num_attention_heads, kv_heads=text.num_key_value_heads,
            head_dim=text.head_dim, vision_linear_params=vision_linear, vision_other_params=vision_other,
        )

    @property
    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each language-model linear layer of one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def language_linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.projections.values())


@dataclass(frozen=True)
class TrainShape:
    """The training settings that decide memory."""

    seq_len: int
    batch_size: int = 1
    gradient_checkpointing: bool = True
    chunked_loss: bool = True
    lora_r: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    optimizer: str = "paged_adamw_8bit"
    double_quant: bool = True
    compute_bytes: int = 2
    loss_fraction: float = 1.0  # share of tokens in the loss (answers only: below 1)
    attention: str = "eager"  # eager keeps every head's attention scores for backward; sdpa and flash attention don't
    loss_kernel: str = "trl"  # with chunked_loss: trl (TRL's chunked log-prob head), liger, or torch (answer logits)
    objective: str = "sft"
    train_embeddings: bool = False  # lora.train_embeddings: the (tied) embedding matrix trains, with optimizer state
    completion_len: int = 0  # GRPO: longest sampled answer (tokens)
    generation_batch: int = 0  # GRPO: answers generated at once (per device), each with its KV cache
    reference_pass: bool = False  # GRPO with a KL term, and DPO: a no-grad forward with the adapter disabled


@dataclass(frozen=True)
class MemoryPlan:
    weights_gib: float
    lora_gib: float
    activations_gib: float
    logits_gib: float
    overhead_gib: float
    paged_optimizer_gib: float = 0.0  # evictable; not part of total
    generation_gib: float = 0.0  # GRPO's KV cache while sampling: a phase of its own, not held during backward

    @property
    def total_gib(self) -> float:
        step = max(self.activations_gib + self.logits_gib, self.generation_gib)
        return self.weights_gib + self.lora_gib + step + self.overhead_gib

    def as_dict(self) -> dict[str, float]:
        return {**{k: round(v, 3) for k, v in asdict(self).items()}, "total_gib": round(self.total_gib, 3)}


def lora_parameters(shape: Shape, train: TrainShape) -> int:
    """Trainable parameters: the LoRA matrices, plus the token embeddings when `lora.train_embeddings` trains them."""
    lora = shape.layers * sum(
        train.lora_r * (a + b) for name, (a, b) in shape.projections.items() if name in train.lora_targets
    )
    return lora + (shape.vocab * shape.hidden if train.train_embeddings else 0)


def _layer_activation_bytes(shape: Shape, train: TrainShape) -> float:
    """Tensors one decoder layer keeps for its backward pass (bf16), eager attention included."""
    tokens = train.batch_size * train.seq_len
    qkv = (shape.heads + 2 * shape.kv_heads) * shape.head_dim
    per_token = 10 * shape.hidden + 4 * qkv + 5 * shape.intermediate
    linear = tokens * per_token * train.compute_bytes
    # Eager attention keeps fp32 softmax inputs and bf16 probabilities for every head; sdpa's kernels recompute them.
    scores = train.batch_size * shape.heads * train.seq_len**2 * (4 + train.compute_bytes)
    if train.attention != "eager":
        scores = 0
    return linear + scores


def estimate(shape: Shape, train: TrainShape) -> MemoryPlan:
    """Peak memory of one QLoRA training step."""
    per_param = NF4_DOUBLE_QUANT_BYTES_PER_PARAM if train.double_quant else NF4_BYTES_PER_PARAM
    quantized = shape.language_linear_params + shape.vision_linear_params
    unquantized = shape.vocab * shape.hidden + shape.vision_other_params
    weights = quantized * per_param + unquantized * train.compute_bytes

    lora_params = lora_parameters(shape, train)
    optimizer_bytes = lora_params * OPTIMIZER_BYTES.get(train.optimizer, 8.0)
    paged = optimizer_bytes if train.optimizer in PAGED_OPTIMIZERS else 0.0
    lora = lora_params * LORA_MASTER_BYTES + (optimizer_bytes - paged)

    if train.objective == "dpo":  # chosen and rejected go through the model as one batch
        train = replace(train, batch_size=2 * train.batch_size, objective="sft")
    tokens = train.batch_size * train.seq_len
    layer = _layer_activation_bytes(shape, train)
    if train.gradient_checkpointing:
        # Each layer's input is kept; one layer at a time is recomputed for its backward pass.
        activations = shape.layers * tokens * shape.hidden * train.compute_bytes + layer
    else:
        activations = shape.layers * layer
    # Causal and sliding-window masks, built once per forward.
    activations += 2 * train.batch_size * train.seq_len**2 * train.compute_bytes

    loss_tokens = tokens * train.loss_fraction
    if train.chunked_loss and train.loss_kernel == "liger":
        # The answer positions' hidden states, their gradient and one logits chunk of about the same size (Liger
        # sizes its chunks to tokens x hidden), plus the fp32 per-token losses. Not yet measured on a GPU.
        logits = loss_tokens * (3 * shape.hidden * train.compute_bytes + 4)
    elif train.chunked_loss and train.loss_kernel == "torch":
        logits = loss_tokens * shape.vocab * FULL_LOGITS_BYTES_PER_ELEMENT  # full logits, answer positions only
    elif train.chunked_loss:
        logits = loss_tokens * shape.hidden * 8 + 2 * 1024 * 4096 * 4  # fp32 hidden grads + projection tiles
    else:
        logits = tokens * shape.vocab * FULL_LOGITS_BYTES_PER_ELEMENT

    generation = 0.0
    if train.objective == "grpo":
        # TRL takes the answers' log-probabilities from full fp32 logits (and their entropy), for answer tokens only.
        logits = train.batch_size * train.completion_len * shape.vocab * (train.compute_bytes + 4 + 4)
        # Sampling keeps keys and values of every layer for every answer of the generation batch.
        kv_per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * train.compute_bytes
        generation = train.generation_batch * train.seq_len * kv_per_token
        generation += train.generation_batch * shape.vocab * 4  # the next-token logits of each answer
    if train.reference_pass:
        # The reference is the model with the adapter disabled (no second copy of the base), run without
        # gradients: one layer's activations at a time, besides what the step holds.
        activations += layer / max(shape.layers, 1)

    # A dequantized copy of the largest weight while its matmul runs.
    overhead = shape.hidden * shape.intermediate * train.compute_bytes
    return MemoryPlan(weights / GIB, lora / GIB, activations / GIB, logits / GIB, overhead / GIB, paged / GIB,
                      generation / GIB)


def suggest(shape: Shape, gpu_gib: float, seq_len: int, target_tokens_per_step: int = 16_384,
            headroom_gib: float = 1.0, like: TrainShape | None = None) -> dict[str, Any]:
    """The largest settings that fit `gpu_gib`, preferring the recipe's sequence length.

    `headroom_gib` covers what the allocator peak does not show: the CUDA context (~0.5 GiB), fragmentation and
    paged optimizer state.

    `like` carries the objective's settings (GRPO's answer length and generation batch, DPO's pairs): batch and
    sequence length are varied on it. Returns batch size, sequence length, accumulation and the loss computation,
    or `fits: False`.
    """
    like = like or TrainShape(seq_len=seq_len)
    budget = gpu_gib - headroom_gib
    for length in sorted({seq_len, *(s for s in (4096, 2048, 1024, 512) if s < seq_len)}, reverse=True):
        for chunked in (True,):
            for batch in (16, 8, 4, 2, 1):
                generation = like.generation_batch and max(like.generation_batch, batch)
                train = replace(like, seq_len=length, batch_size=batch, chunked_loss=chunked,
                                gradient_checkpointing=True, generation_batch=generation)
                plan = estimate(shape, train)
                if plan.total_gib <= budget:
                    accumulation = max(1, target_tokens_per_step // (batch * length))
                    return {"fits": True, "seq_len": length, "batch_size": batch,
                            "gradient_accumulation_steps": accumulation, "gradient_checkpointing": True,
                            "chunked_loss": chunked, "estimate": plan.as_dict()}
    return {"fits": False, "seq_len": None, "batch_size": None, "gradient_accumulation_steps": None,
            "gradient_checkpointing": True, "chunked_loss": True,
            "estimate": estimate(shape, replace(like, seq_len=512, batch_size=1)).as_dict()}



HEADROOM_GIB = 1.0
LOSS_KERNEL_NAMES = {"trl": "TRL's chunked log-prob head", "liger": "Liger fused linear cross-entropy",
                     "torch": "answer-token logits"}
GPU_SIZES_GIB = (8, 12, 16, 24)
_UNITS = {"gib": 1.0, "gb": 1e9 / GIB, "mib": 1 / 1024, "mb": 1e6 / GIB}


MAX_GPU_GIB = 4096.0


def parse_memory(text: str) -> float:
    """'8GiB', '24GB', '8' (GiB) → GiB; positive and at most MAX_GPU_GIB, so a typo cannot plan for nothing."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", text)
    unit = (match.group(2).lower() if match else "") or "gib"
    if not match or unit not in _UNITS:
        raise ValueError(f"--gpu-mem {text!r}: expected a size like 8GiB, 12GB or 24")
    gib = float(match.group(1)) * _UNITS[unit]
    if not 0 < gib <= MAX_GPU_GIB:
        raise ValueError(f"--gpu-mem {text!r}: expected a size above 0 and at most {MAX_GPU_GIB:g}GiB, e.g. 8GiB")
    return gib


def train_shape_for(recipe: Recipe) -> TrainShape:
    """The memory-relevant settings of a recipe on a GPU (the loss kernel `auto` picks there, given what is
    installed here)."""
    from finetune.train._loss import resolve_loss_kernel

    targets = recipe.lora.target_modules
    all_targets = TrainShape.__dataclass_fields__["lora_targets"].default
    train, grpo = recipe.train, recipe.train.grpo
    return TrainShape(
        objective=train.objective,
        completion_len=grpo.max_completion_length if train.objective == "grpo" else 0,
        # TRL samples batch × accumulation answers at once (vLLM, when used, holds them in its own share instead)
        generation_batch=train.per_device_train_batch_size * train.gradient_accumulation_steps
        if train.objective == "grpo" and not grpo.use_vllm else 0,
        reference_pass=train.objective == "dpo" or (train.objective == "grpo" and grpo.beta > 0),
        seq_len=recipe.train.max_length,
        batch_size=recipe.train.per_device_train_batch_size,
        gradient_checkpointing=recipe.train.gradient_checkpointing,
        chunked_loss=True,
        lora_r=recipe.lora.r,
        train_embeddings=recipe.lora.train_embeddings,
        lora_targets=all_targets if targets == "all-linear" else tuple(targets),
        optimizer=recipe.train.optim,
        double_quant=recipe.model.double_quant,
        compute_bytes=4 if recipe.model.compute_dtype == "float32" else 2,
        attention=recipe.model.attn_implementation,
        loss_kernel=resolve_loss_kernel(recipe.train.loss_kernel, "cuda"),
    )


def plan_recipe(recipe: Recipe, gpu_mem: str | None = None) -> dict[str, Any]:
    """Estimate for the recipe as written, suggestions per GPU size, and a fit check of each `Ngb` profile."""
    from finetune.models import config_for
    from finetune.recipe import apply_profile, validate_recipe

    sizes = [parse_memory(gpu_mem)] if gpu_mem is not None else list(GPU_SIZES_GIB)
    shape = Shape.from_config(config_for(recipe.model.base, recipe.model.revision))
    plan = estimate(shape, train_shape_for(recipe))
    profiles = {}
    for name in recipe.profiles:
        size = re.fullmatch(r"(\d+)gb", name)
        if size is None:
            continue
        profiled = validate_recipe(apply_profile(recipe.model_dump(mode="json"), name))
        profile_plan = estimate(shape, train_shape_for(profiled))
        profiles[name] = {
            "gpu_gib": float(size.group(1)), "estimate": profile_plan.as_dict(),
            "fits": profile_plan.total_gib + HEADROOM_GIB <= float(size.group(1)),
            "seq_len": profiled.train.max_length, "batch_size": profiled.train.per_device_train_batch_size,
            "gradient_accumulation_steps": profiled.train.gradient_accumulation_steps,
        }
    return {
        "model": recipe.model.base,
        "settings": asdict(train_shape_for(recipe)),
        "estimate": plan.as_dict(),
        "suggestions": {f"{s:g}GiB": suggest(shape, s, recipe.train.max_length, like=train_shape_for(recipe))
                        for s in sizes},
        "profiles": profiles,
        "headroom_gib": HEADROOM_GIB,
    }


def render_plan(report: dict[str, Any]) -> str:
    est, settings = report["estimate"], report["settings"]
    lines = [
        f"Memory plan for {report['model']} (QLoRA, seq {settings['seq_len']}, batch {settings['batch_size']}, "
        f"r={settings['lora_r']}, gradient checkpointing {'on' if settings['gradient_checkpointing'] else 'off'})",
        "",
        f"  4-bit weights (+ embeddings)      {est['weights_gib']:7.2f} GiB",
        f"  LoRA weights, grads, optimizer    {est['lora_gib']:7.2f} GiB",
        f"  activations                       {est['activations_gib']:7.2f} GiB",
        f"  logits / loss                     {est['logits_gib']:7.2f} GiB  "
        + ("(answer tokens, full fp32 logits)" if settings["objective"] == "grpo"
           else f"({LOSS_KERNEL_NAMES[settings['loss_kernel']]})"),
        f"  overhead (dequantized weight)     {est['overhead_gib']:7.2f} GiB",
        *([f"  GRPO sampling (KV cache, {settings['generation_batch']} answers) {est['generation_gib']:5.2f} GiB  "
           "(apart from the step: the larger counts)"] if settings["generation_batch"] else []),
        *(["  reference pass: adapter disabled, no second copy of the base"] if settings["reference_pass"] else []),
        f"  peak allocated                    {est['total_gib']:7.2f} GiB",
        f"  + paged optimizer state           {est['paged_optimizer_gib']:7.2f} GiB (evictable)",
        f"  + CUDA context and headroom       {report['headroom_gib']:7.2f} GiB",
        "",
        "Suggested settings per GPU:",
    ]
    for size, s in report["suggestions"].items():
        if s["fits"]:
            lines.append(f"  {size:>8}: seq {s['seq_len']}, batch {s['batch_size']}, accumulation "
                         f"{s['gradient_accumulation_steps']}, checkpointing on, chunked loss "
                         f"→ {s['estimate']['total_gib']:.2f} GiB")
        else:
            lines.append(f"  {size:>8}: does not fit even at seq 512, batch 1")
    if report["profiles"]:
        lines += ["", "Recipe profiles:"]
        for name, p in report["profiles"].items():
            verdict = "fits" if p["fits"] else "DOES NOT FIT"
            lines.append(f"  {name:>6}: seq {p['seq_len']}, batch {p['batch_size']}, accumulation "
                         f"{p['gradient_accumulation_steps']} → {p['estimate']['total_gib']:.2f} GiB: {verdict}")
    return "\n".join(lines)
