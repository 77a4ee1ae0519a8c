"""The table of `medtune` verbs (each one's description, arguments and run function) and the parser built from it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from finetune.cli import _eval, _export, _plan, _prepare, _run, _serve, _studio, _tiny_model, _train, _validate
from finetune.cli._args import help_text


@dataclass(frozen=True)
class Verb:
    """One `medtune VERB`: what `--help` says, the arguments it takes, and what runs it (returns the exit code)."""

    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


VERBS: dict[str, Verb] = {
    "prepare": Verb(_prepare.DESCRIPTION, _prepare.add_arguments, _prepare.run),
    "train": Verb(_train.DESCRIPTION, _train.add_arguments, _train.run),
    "export": Verb(_export.DESCRIPTION, _export.add_arguments, _export.run),
    "serve": Verb(_serve.DESCRIPTION, _serve.add_arguments, _serve.run),
    "eval": Verb(_eval.DESCRIPTION, _eval.add_arguments, _eval.run),
    "run": Verb(_run.DESCRIPTION, _run.add_arguments, _run.run),
    "validate": Verb(_validate.DESCRIPTION, _validate.add_arguments, _validate.run),
    "plan": Verb(_plan.DESCRIPTION, _plan.add_arguments, _plan.run),
    "tiny-model": Verb(_tiny_model.DESCRIPTION, _tiny_model.add_arguments, _tiny_model.run),
    "studio": Verb(_studio.DESCRIPTION, _studio.add_arguments, _studio.run),
}
"""Every verb in the order `medtune --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medtune",
        description="Adapt MedGemma to the clinical language of Russian, Kazakh and Chinese clinics.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in VERBS.items():
        verb.add_arguments(verbs.add_parser(name, help=help_text(verb.description), description=verb.description))
    return parser
