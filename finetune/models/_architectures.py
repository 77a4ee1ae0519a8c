"""MedGemma architectures as transformers configs, so planning and benchmarks need no download.

The numbers are Gemma 3's published shapes (MedGemma shares them): 4B is image+text with a SigLIP tower,
27B text is the language model alone.
"""

from __future__ import annotations

from transformers import AutoConfig, Gemma3Config, Gemma3TextConfig, PretrainedConfig, SiglipVisionConfig

GEMMA3_VOCAB = 262_208
SLIDING_WINDOW = 1024


def _text_config(layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, head_dim: int,
                 query_scalar: int) -> Gemma3TextConfig:
    return Gemma3TextConfig(
        vocab_size=GEMMA3_VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=query_scalar,
        sliding_window=SLIDING_WINDOW,
        max_position_embeddings=131_072,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        eos_token_id=[1, 106],
    )


def medgemma_4b() -> Gemma3Config:
    """google/medgemma-4b-it: Gemma3ForConditionalGeneration."""
    text = _text_config(layers=34, hidden=2560, intermediate=10240, heads=8, kv_heads=4, head_dim=256,
                        query_scalar=256)
    vision = SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
        image_size=896, patch_size=14, vision_use_head=False,
    )
    return Gemma3Config(
        text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=256,
        boi_token_index=255_999, eoi_token_index=256_000, image_token_index=262_144,
    )


def medgemma_27b_text() -> Gemma3TextConfig:
    """google/medgemma-27b-text-it: Gemma3ForCausalLM."""
    return _text_config(layers=62, hidden=5376, intermediate=21504, heads=32, kv_heads=16, head_dim=128,
                        query_scalar=168)


KNOWN = {
    "google/medgemma-4b-it": medgemma_4b,
    "google/medgemma-4b-pt": medgemma_4b,
    "google/medgemma-27b-text-it": medgemma_27b_text,
}


def config_for(model: str, revision: str | None = None) -> PretrainedConfig:
    """The architecture of `model`: a known MedGemma id without the network, else its own config.json."""
    if model in KNOWN:
        return KNOWN[model]()
    return AutoConfig.from_pretrained(model, revision=revision)
