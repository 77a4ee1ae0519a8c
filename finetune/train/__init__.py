"""QLoRA training with TRL's SFTTrainer (collators, data loading, the guarded trainer) and the GPU memory plan."""

from finetune.train._memory_plan import Shape, TrainShape, estimate, plan_recipe, render_plan
from finetune.train._sft import train

__all__ = ["Shape", "TrainShape", "estimate", "plan_recipe", "render_plan", "train"]
