"""What several verbs share: argument types, the recipe arguments and reading the recipe they name."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from finetune.recipe import Recipe, RecipeError, load_recipe

RECIPE_HELP = "recipe YAML (default: the embedded tiny demo), then section.key=value overrides"


def positive_int(text: str) -> int:
    """argparse type for counts: `int` alone would let 0 and -1 through (`--preview -1` printed one example)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port(text: str) -> int:
    """argparse type for a TCP port (0 lets the system choose one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def help_text(text: str) -> str:
    """argparse reads help texts as %-formats: a '95%' in a description would crash `medtune --help`."""
    return text.replace("%", "%%")


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    """The recipe, its overrides and a profile: the first arguments of every verb that reads a recipe."""
    parser.add_argument("recipe", nargs="?", default=None, help=RECIPE_HELP)
    parser.add_argument("overrides", nargs="*", default=[], help="e.g. train.learning_rate=1e-4")
    parser.add_argument("--profile", default=None, help="apply one of the recipe's profiles, e.g. 8gb")


def split_recipe_args(recipe: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """`medtune run train.max_steps=2` means: the embedded recipe with one override."""
    if recipe is not None and "=" in recipe and not Path(recipe).exists():
        return None, [recipe, *overrides]
    return recipe, overrides


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe the command line names, with its profile and overrides applied."""
    path, overrides = split_recipe_args(args.recipe, args.overrides)
    return load_recipe(path, overrides, getattr(args, "profile", None))


def api_key(env_name: str | None) -> str | None:
    """The bearer token held in the environment variable `--api-key-env` names (None without that flag)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise RecipeError(f"--api-key-env {env_name}: that environment variable is not set")
    return value
