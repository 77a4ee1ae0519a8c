"""MedGemma architectures as transformers configs, so planning and benchmarks need no download.

The numbers are Gemma 3's published shapes (MedGemma shares them): the image+text models
(Gemma3ForConditionalGeneration: medgemma-4b-it, medgemma-1.5-4b-it, medgemma-27b-it) are a Gemma 3 language model
with the 896-pixel SigLIP tower (256 soft tokens per image); 27B text is the language model alone (Gemma3ForCausalLM).
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


def _image_text(text: Gemma3TextConfig) -> Gemma3Config:
    """Gemma 3's image+text wrapper around `text`: the SigLIP-400M tower every MedGemma image+text model uses."""
    vision = SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
        image_size=896, patch_size=14, vision_use_head=False,
    )
    return Gemma3Config(
        text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=256,
        boi_token_index=255_999, eoi_token_index=256_000, image_token_index=262_144,
    )


def _text_4b() -> Gemma3TextConfig:
    return _text_config(layers=34, hidden=2560, intermediate=10240, heads=8, kv_heads=4, head_dim=256,
                        query_scalar=256)


def _text_27b() -> Gemma3TextConfig:
    return _text_config(layers=62, hidden=5376, intermediate=21504, heads=32, kv_heads=16, head_dim=128,
                        query_scalar=168)


def medgemma_4b() -> Gemma3Config:
    """google/medgemma-4b-it: Gemma3ForConditionalGeneration."""
    return _image_text(_text_4b())


def medgemma_1_5_4b() -> Gemma3Config:
    """google/medgemma-1.5-4b-it (January 2026): Gemma3ForConditionalGeneration, the medgemma-4b-it shape.

    Its config.json could not be read here (the repository is gated); what public descriptions of it give agrees
    with medgemma-4b-it: 34 layers of hidden size 2560, 8 query and 4 key/value heads of dimension 256, a 1024-token
    sliding window, the 262,208-token vocabulary, 131,072 positions, a SigLIP tower taking 896x896 images as 256
    tokens; the text decoder alone is 3.88B parameters, which is what intermediate size 10240 gives. Not confirmed:
    the special-token ids and rope settings, taken to be Gemma 3's (they do not change the memory plan).
    """
    return _image_text(_text_4b())


def medgemma_27b() -> Gemma3Config:
    """google/medgemma-27b-it: Gemma3ForConditionalGeneration, medgemma-27b-text-it's language model plus the
    SigLIP tower of the 4B models."""
    return _image_text(_text_27b())


def medgemma_27b_text() -> Gemma3TextConfig:
    """google/medgemma-27b-text-it: Gemma3ForCausalLM."""
    return _text_27b()


KNOWN = {
    "google/medgemma-4b-it": medgemma_4b,
    "google/medgemma-4b-pt": medgemma_4b,
    "google/medgemma-1.5-4b-it": medgemma_1_5_4b,
    "google/medgemma-27b-it": medgemma_27b,
    "google/medgemma-27b-text-it": medgemma_27b_text,
}


def config_for(model: str, revision: str | None = None) -> PretrainedConfig:
    """The architecture of `model`: a known MedGemma id without the network, else its own config.json."""
    if model in KNOWN:
        return KNOWN[model]()
    return AutoConfig.from_pretrained(model, revision=revision)
