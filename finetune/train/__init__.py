"""QLoRA training with TRL's SFTTrainer (collators, data loading, the guarded trainer), the objectives (chat SFT,
completion on raw text, GRPO with verifiable rewards, DPO on preference pairs), where a run starts (an earlier
adapter or merged weights) and the GPU memory plan."""

from finetune.train._handover import merge_adapter, start_kind, with_start_base
from finetune.train._memory_plan import Shape, TrainShape, estimate, plan_recipe, render_plan
from finetune.train._objectives import train

__all__ = [
    "Shape", "TrainShape", "estimate", "merge_adapter", "plan_recipe", "render_plan", "start_kind", "train",
    "with_start_base",
]
