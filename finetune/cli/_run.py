"""`medtune run`: every stage of the recipe in order, from the stage table."""

from __future__ import annotations

import argparse

from finetune import stages
from finetune.cli._args import add_recipe_args, recipe_from_args

DESCRIPTION = "Run every stage of a recipe in order: prepare, train, export, eval."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    out = stages.run_all(recipe)
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"all outputs under {recipe.root}")
    return 0
