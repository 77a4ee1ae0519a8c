"""finetune.eval."""
