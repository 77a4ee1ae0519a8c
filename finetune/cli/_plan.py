"""`medtune plan`: the memory plan of a recipe's training, from the model config alone."""

from __future__ import annotations

import argparse
import json

from finetune.cli._args import add_recipe_args, recipe_from_args

DESCRIPTION = (
    "Estimate peak GPU memory of a recipe's QLoRA training from the model config alone (no weights) "
    "and suggest settings that fit 8, 12, 16 and 24 GiB cards (or --gpu-mem)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)
    parser.add_argument("--gpu-mem", default=None, help="GPU memory to plan for, e.g. 8GiB or 24GB")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit 1 when a profile (or, with --gpu-mem, a suggestion) does not fit."""
    recipe = recipe_from_args(args)
    from finetune.train import plan_recipe, render_plan

    report = plan_recipe(recipe, args.gpu_mem)
    print(json.dumps(report, indent=2) if args.json else render_plan(report))
    fits = [*report["profiles"].values(), *(report["suggestions"].values() if args.gpu_mem is not None else ())]
    return 0 if all(p["fits"] for p in fits) else 1
