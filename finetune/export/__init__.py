"""The export bundle: the adapter merged into full-precision weights with its merge check, the vLLM LoRA layout,
GGUF with an Ollama Modelfile, the model card with NOTICE, and the sha256 manifest (`verify_bundle` re-checks it)."""

from finetune.export._bundle import export, refresh_model_card, summary_lines
from finetune.export._manifest import verify_bundle

__all__ = ["export", "refresh_model_card", "summary_lines", "verify_bundle"]
