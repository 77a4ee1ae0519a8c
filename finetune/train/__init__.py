"""finetune.train._sft."""
