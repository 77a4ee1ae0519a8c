"""The training sections of a recipe: the LoRA adapter, the optimisation and its objective (sft, completion, grpo,
dpo, with the settings of each), and continued pretraining before SFT."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from data_prep.config import MAX_TOKENS, ConfigSection, DataConfig
from data_prep.tasks import REFERENCE_TASKS


class LoraConfig(ConfigSection):
    """The LoRA adapter."""

    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1, le=8192)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt; all-linear covers attention and MLP projections."
    )
    language_model_only: bool = Field(
        True, description="Leave the vision tower and projector frozen (text-only adapters)."
    )
    train_embeddings: bool = Field(
        False, description="Also train the token embeddings (tied to lm_head, kept one matrix) and save them whole in "
        "the adapter: for continued pretraining on text the base's embeddings barely know. Costs vocabulary x "
        "hidden parameters (~0.67B for MedGemma 4B) in the adapter, the optimizer and the plan."
    )


Objective = Literal["sft", "completion", "grpo", "dpo"]
"""What the loss is taken on: `sft` the model's turns of chat examples; `completion` every token of raw text rows
(continued pretraining on unlabelled notes); `grpo` sampled answers scored by verifiable rewards; `dpo` pairs of
answers a clinician chose between."""
GRPO_TASKS = REFERENCE_TASKS
"""Tasks whose examples carry a checkable reference (answer letter, yes/no, code, entities) for GRPO's rewards."""
DPO_TASKS = ("preference",)
RewardName = Literal["option_letter", "yes_no", "icd10", "extraction", "answer_text", "format", "language", "length"]
"""The rewards of finetune.train._rewards (REWARD_NAMES)."""


class GrpoConfig(ConfigSection):
    """GRPO (`train.objective: grpo`): answers sampled per prompt, scored by verifiable rewards, compared within their
    group. Fields are TRL's GRPOConfig names."""

    num_generations: int = Field(
        4, ge=2, le=256, description="Answers sampled per prompt; train.per_device_train_batch_size × "
        "gradient_accumulation_steps counts answers and must be a multiple of it."
    )
    max_completion_length: int = Field(256, ge=1, le=MAX_TOKENS, description="Longest sampled answer in tokens.")
    temperature: float = Field(1.0, gt=0, le=10.0, description="Sampling temperature of the answers.")
    beta: float = Field(
        0.0, ge=0, le=10.0, description="KL weight against the starting model; 0 loads no reference and runs no "
        "reference pass (TRL's default)."
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Divide advantages by the reward spread of the group, the batch, or not at all."
    )
    rewards: dict[RewardName, float] = Field(
        default_factory=lambda: {"option_letter": 1.0, "yes_no": 1.0, "icd10": 1.0, "extraction": 1.0,
                                 "format": 0.25, "language": 0.5},
        description="Reward name → weight; a reward that does not apply to an example's kind scores 0 there.",
    )
    max_answer_chars: int = Field(
        1000, ge=1, le=10**6, description="Answers longer than this are penalised by the `length` reward."
    )
    use_vllm: bool = Field(
        False, description="Generate with vLLM on the GPU (pip install '.[vllm]'); much faster sampling than "
        "transformers' generate. CPU runs and machines without vLLM use generate."
    )
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="colocate: vLLM shares the training GPU; server: a `trl vllm-serve` process."
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1.0, description="Share of GPU memory vLLM takes in colocate mode (weights and KV cache)."
    )

    @field_validator("rewards")
    @classmethod
    def _some_reward(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or not any(weight != 0 for weight in value.values()):
            raise ValueError("name at least one reward with a non-zero weight, e.g. {option_letter: 1.0}")
        return value


class DpoConfig(ConfigSection):
    """DPO (`train.objective: dpo`) on preference pairs; the reference is the starting model, computed with the
    adapter disabled (or, starting from an SFT adapter, a frozen copy of it): no second copy of the base."""

    beta: float = Field(0.1, gt=0, le=100.0, description="How far the policy may move from the reference.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "apo_zero", "sigmoid_norm"] = Field(
        "sigmoid", description="TRL's DPO loss: sigmoid is the DPO paper's; ipo for noisy or small preference sets."
    )


class TrainConfig(ConfigSection):
    """Optimisation; fields mirror TRL's SFTConfig names where one exists."""

    objective: Objective = Field(
        "sft", description="sft: chat examples, loss on the model's turns; completion: raw text rows (prepared with "
        "data.sources[].tasks: [text]) packed into rows of max_length and trained with the causal LM loss on every "
        "token (continued pretraining); grpo: prompts of tasks with a checkable answer, rewarded (train.grpo); dpo: "
        "preference pairs (format: preference, train.dpo). GRPO and DPO usually start from an SFT result "
        "(start_from)."
    )
    start_from: str | None = Field(
        None, description="Start from earlier training: an adapter directory (adapter_config.json; its weights keep "
        "training and the result is one adapter on model.base) or a merged model directory (config.json; a new "
        "adapter is trained on those weights). None: fresh LoRA weights on model.base."
    )
    num_train_epochs: float = Field(1.0, gt=0, le=1000)
    max_steps: int = Field(
        -1, ge=-1, le=10**9, description="Stop after this many optimizer steps (-1: run the epochs)."
    )
    learning_rate: float = Field(2e-4, gt=0, le=1.0, description="Peak learning rate; LoRA uses about 1e-4 to 1e-3.")
    per_device_train_batch_size: int = Field(1, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(8, ge=1, le=4096)
    max_length: int = Field(
        2048, ge=16, le=MAX_TOKENS, description="Longest training row in tokens: examples are truncated to it, "
        "packed rows fill it."
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler_type: str = "cosine"
    weight_decay: float = Field(0.0, ge=0, le=1.0)
    max_grad_norm: float = Field(0.3, gt=0)
    optim: str = Field("adamw_torch", description="Any transformers optimizer name, e.g. paged_adamw_8bit on GPU.")
    gradient_checkpointing: bool = Field(True, description="Recompute activations (non-reentrant) to save memory.")
    assistant_only_loss: bool = Field(True, description="Train on the model's turns only, never on prompts.")
    packing: bool = Field(
        True, description="Pack text examples into rows of max_length tokens (positions restart and attention stops "
        "at every example boundary); image+text data is never packed."
    )
    loss_kernel: Literal["auto", "torch", "trl", "liger"] = Field(
        "auto", description="How the loss over the vocabulary is computed. auto: Liger Kernel's fused linear "
        "cross-entropy on a GPU where it is installed (pip install \"medtune[gpu]\"), else TRL's chunked log-prob "
        "head; on CPU, torch's cross-entropy on the answer tokens only. trl also logs entropy and token accuracy."
    )
    eval_steps: int | None = Field(
        None, ge=1, le=10**9, description="Evaluate on the validation split and save a checkpoint every N "
        "optimizer steps (None: at the end of each epoch)."
    )
    early_stopping_patience: int | None = Field(
        3, ge=1, le=10_000, description="Stop after this many evaluations without a lower validation loss "
        "(None: never)."
    )
    early_stopping_threshold: float = Field(
        0.0, ge=0, description="The least drop in validation loss that counts as an improvement for early stopping."
    )
    load_best_model_at_end: bool = Field(
        True, description="Write the checkpoint with the lowest validation loss as the adapter, not the last one."
    )
    save_total_limit: int = Field(
        2, ge=1, le=1000, description="Checkpoints kept on disk; the best one is always among them."
    )
    logging_steps: int = Field(10, ge=1, le=10**9)
    report_to: list[Literal["wandb", "tensorboard"]] = Field(
        default_factory=list, description="Loggers; wandb runs offline unless WANDB_MODE says otherwise. Event files "
        "are written inside the adapter directory."
    )
    wandb_project: str = "medtune"
    wandb_mode: Literal["offline", "online"] = Field(
        "offline", description="offline keeps runs on this machine (sync them later); WANDB_MODE in the environment "
        "takes precedence."
    )
    run_name: str | None = Field(None, description="Run name in wandb and TensorBoard (default: the recipe name).")
    grpo: GrpoConfig = Field(default_factory=GrpoConfig, description="Settings of objective grpo.")
    dpo: DpoConfig = Field(default_factory=DpoConfig, description="Settings of objective dpo.")


class PretrainConfig(ConfigSection):
    """Continued pretraining on raw text before SFT, in the same `medtune run`.

    Its own data (sources with `tasks: [text]`, prepared into output_dir/pretrain/data) trains a completion
    adapter in output_dir/pretrain/adapter; SFT then starts from it as `train.start_from` would: `hand_over:
    adapter` keeps training that adapter on the chat data (one adapter on model.base in the end), `merged` merges
    it into full-precision weights (output_dir/pretrain/merged) that become the base of SFT, export and eval.
    """

    data: DataConfig = Field(description="Raw text sources: every source's tasks are [text].")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(objective="completion"),
        description="Optimisation of the pretraining stage; objective is completion.",
    )
    lora: LoraConfig | None = Field(None, description="The pretraining adapter; None: the recipe's lora.")
    hand_over: Literal["adapter", "merged"] = Field(
        "adapter", description="How SFT starts from it: keep training its adapter, or a new adapter on its merged "
        "weights."
    )

    @model_validator(mode="after")
    def _completion_only(self) -> PretrainConfig:
        if self.train.objective != "completion":
            raise ValueError("pretrain.train.objective must be completion (continued pretraining on raw text)")
        if self.train.start_from is not None:
            raise ValueError("pretrain.train.start_from is not used: pretraining starts from model.base")
        return self
