"""Gemma 3 bases: loading (4-bit for training, full precision for merging), the Gemma guards (roles, masks, dtypes,
adapter content), MedGemma architectures for planning, and tiny/random models built locally."""

from finetune.models._architectures import config_for, medgemma_4b, medgemma_27b_text
from finetune.models._gemma import (
    END_OF_TURN,
    AssistantMaskError,
    BatchGuard,
    ChatFormatError,
    adapter_summary,
    check_lora_config,
    check_lora_targets,
    check_messages,
    check_packing_supported,
    expected_assistant_mask,
    is_multimodal,
    resolve_compute_dtype,
    text_only_token_type_ids,
    verify_assistant_masks,
)
from finetune.models._loading import (
    device_type,
    is_image_text,
    load_for_training,
    load_full_precision,
    load_processor,
    load_tokenizer,
    lora_config,
    process_state,
)
from finetune.models._random import build_random_qlora_base
from finetune.models._tiny import build_tiny_model

__all__ = [
    "END_OF_TURN",
    "AssistantMaskError",
    "BatchGuard",
    "ChatFormatError",
    "adapter_summary",
    "build_random_qlora_base",
    "build_tiny_model",
    "check_lora_config",
    "check_lora_targets",
    "check_messages",
    "check_packing_supported",
    "config_for",
    "device_type",
    "expected_assistant_mask",
    "is_image_text",
    "is_multimodal",
    "load_for_training",
    "load_full_precision",
    "load_processor",
    "load_tokenizer",
    "lora_config",
    "medgemma_4b",
    "medgemma_27b_text",
    "process_state",
    "resolve_compute_dtype",
    "text_only_token_type_ids",
    "verify_assistant_masks",
]
