"""finetune.models."""
