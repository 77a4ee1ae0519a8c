"""`medtune tiny-model`: a tiny Gemma 3 with random weights, for the demo and tests."""

from __future__ import annotations

import argparse

DESCRIPTION = "Build a tiny Gemma 3 model with random weights and a tokenizer trained on the bundled text."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="directory to write the model to")
    parser.add_argument("--variant", choices=("causal", "image_text"), default="causal",
                        help="Gemma3ForCausalLM or Gemma3ForConditionalGeneration (tiny vision tower)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed builds the same model")


def run(args: argparse.Namespace) -> int:
    from finetune.models import build_tiny_model
    from finetune.recipe import TinyModelConfig

    out = build_tiny_model(args.out, TinyModelConfig(variant=args.variant, seed=args.seed))
    print(f"tiny {args.variant} Gemma 3 model written to {out}")
    return 0
