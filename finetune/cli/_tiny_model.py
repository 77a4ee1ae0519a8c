"""`medtune tiny-model`: a tiny Gemma 3 with random weights, for the demo and tests."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Build a tiny Gemma 3 model with a tokenizer trained on the bundled text: random weights, or continued-pretrained "
    "on that text with --pretrain-steps."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="directory to write the model to")
    parser.add_argument("--variant", choices=("causal", "image_text"), default="causal",
                        help="Gemma3ForCausalLM or Gemma3ForConditionalGeneration (tiny vision tower)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed builds the same model")
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="continued pretraining steps on the bundled ru/kk/zh text (completion objective, merged "
                        "into the weights) so the model writes the languages; 0: random weights")


def run(args: argparse.Namespace) -> int:
    from finetune import stages
    from finetune.models import build_tiny_model
    from finetune.recipe import TinyModelConfig, validate_recipe

    tiny = TinyModelConfig(variant=args.variant, seed=args.seed, pretrain_steps=args.pretrain_steps)
    if tiny.pretrain_steps == 0:
        out = build_tiny_model(args.out, tiny)
        print(f"tiny {args.variant} Gemma 3 model written to {out}")
        return 0
    if (Path(args.out) / "config.json").is_file():
        print(f"{args.out} already holds a model; choose an empty directory")
        return 1
    recipe = validate_recipe({"name": "tiny-model", "output_dir": str(Path(args.out).parent),
                              "model": {"base": args.out, "tiny": tiny.model_dump()}})
    stages.ensure_base_model(recipe)
    print(f"tiny {args.variant} Gemma 3 model written to {args.out}")
    return 0
