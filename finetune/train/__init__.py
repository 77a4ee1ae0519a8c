"""QLoRA training: TRL's SFTTrainer (collators, data loading, the guarded trainer), GRPO with checkable rewards and
DPO on preference pairs through the same run, and the GPU memory plan."""

from finetune.train._memory_plan import Shape, TrainShape, estimate, plan_recipe, render_plan
from finetune.train._objectives import train

__all__ = ["Shape", "TrainShape", "estimate", "plan_recipe", "render_plan", "train"]
