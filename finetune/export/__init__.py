"""finetune.export._bundle."""
