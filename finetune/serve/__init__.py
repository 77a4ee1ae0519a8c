"""finetune.serve._app."""
