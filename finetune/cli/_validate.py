"""`medtune validate`: check a recipe without loading any model and print it resolved."""

from __future__ import annotations

import argparse
import json
import sys

from finetune.cli._args import add_recipe_args, recipe_from_args

DESCRIPTION = "Check a recipe (and overrides) without loading any model; prints the resolved recipe."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    print(json.dumps(recipe.model_dump(mode="json"), indent=2, ensure_ascii=False))
    print(f"recipe {recipe.name!r} is valid", file=sys.stderr)
    return 0
