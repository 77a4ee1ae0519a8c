"""finetune.recipe._schema."""
