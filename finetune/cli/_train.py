"""`medtune train`: the recipe's train stage."""

from __future__ import annotations

import argparse

from finetune import stages
from finetune.cli._args import add_recipe_args, recipe_from_args

DESCRIPTION = (
    "Train the recipe's QLoRA adapter with TRL's SFTTrainer on the prepared train split "
    "(loss on the model's turns only)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue a stopped run from its last checkpoint (same recipe, same data order)")


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    print(f"adapter written to {stages.run_stage('train', recipe, resume=args.resume)}")
    return 0
