"""Build a tiny Gemma 3 model locally: same classes and tokenizer code paths as MedGemma, random weights.

No hub is reachable where medtune is tested, so every stage runs against a model built here: a SentencePiece
BPE tokenizer trained on the bundled clinic text of all three languages (loaded as Gemma's own tokenizer
class, with Gemma 3's stock chat template) and a `Gemma3ForCausalLM` (like medgemma-27b-text-it) or a
`Gemma3ForConditionalGeneration` with a tiny SigLIP tower (like medgemma-4b-it). The same seed builds the
same files.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import (
    AutoTokenizer,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
    Gemma3TextConfig,
    GenerationConfig,
    PreTrainedTokenizerBase,
    SiglipVisionConfig,
)
from trl.chat_template_utils import gemma3_chat_template

from data_prep.samples import bundled_example_texts, bundled_texts
from finetune.recipe import TinyModelConfig

# The turn and image markers the chat template and processor use (Gemma's pad/eos/bos/unk come first, at fixed ids).
USER_SYMBOLS = (
    "<mask>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
)
END_OF_TURN = "<end_of_turn>"
IMAGE_SIZE = 56
PATCH_SIZE = 14
MM_TOKENS_PER_IMAGE = 4


def train_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int) -> PreTrainedTokenizerBase:
    """Train a byte-fallback BPE SentencePiece model and load it through Gemma's tokenizer class."""
    # Role words, spaces and digits are in every example: make sure they get pieces of their own.
    corpus = ["user model system", "0 1 2 3 4 5 6 7 8 9 . , : ; ( ) / - %", *texts]
    model_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model_bytes,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        allow_whitespace_only_pieces=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=list(USER_SYMBOLS),
        num_threads=1,
        minloglevel=2,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(model_bytes.getvalue())
    tokenizer_config = {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "mask_token": "<mask>", "add_bos_token": True, "add_eos_token": False,
        "extra_special_tokens": {
            "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
        },
        "padding_side": "left",
        "model_max_length": 4096,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    tokenizer.chat_template = gemma3_chat_template
    return tokenizer


def _text_config(tokenizer: PreTrainedTokenizerBase, config: TinyModelConfig) -> Gemma3TextConfig:
    heads = 4
    return Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.hidden_size * 2,
        num_hidden_layers=config.num_layers,
        num_attention_heads=heads,
        num_key_value_heads=1,
        head_dim=config.hidden_size // heads,
        query_pre_attn_scalar=config.hidden_size // heads,
        max_position_embeddings=4096,
        initializer_range=config.initializer_range,
        sliding_window=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)],
    )


def _generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)],
        do_sample=False,
    )


def build_tiny_model(out_dir: str | Path, config: TinyModelConfig | None = None) -> Path:
    """Write a tiny Gemma 3 checkpoint (weights, tokenizer, chat template, generation config) to `out_dir`."""
    config = config or TinyModelConfig()
    out = Path(out_dir)
    texts = itertools.chain(bundled_texts(), bundled_example_texts())
    tokenizer = train_tokenizer(texts, out, config.vocab_size)
    text_config = _text_config(tokenizer, config)
    torch.manual_seed(config.seed)
    if config.variant == "causal":
        model = Gemma3ForCausalLM(text_config)
    else:
        vision = SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, vision_use_head=False,
        )
        full = Gemma3Config(
            text_config=text_config.to_dict(),
            vision_config=vision.to_dict(),
            mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
            boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
            eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
            image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
        )
        model = Gemma3ForConditionalGeneration(full)
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out, safe_serialization=True)
    if config.variant == "image_text":
        image_processor = Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        processor = Gemma3Processor(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=gemma3_chat_template,
            image_seq_length=MM_TOKENS_PER_IMAGE,
        )
        processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
