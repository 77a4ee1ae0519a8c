"""`medtune export`: the recipe's export stage, a refreshed model card, or a check of an export's files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from finetune import stages
from finetune.cli._args import add_recipe_args, recipe_from_args

DESCRIPTION = (
    "Merge the adapter into full-precision base weights and write a bundle other services load: "
    "sharded safetensors, the adapter alone for vLLM, GGUF with an Ollama Modelfile, a model card, NOTICE, the "
    "measured merge difference and a sha256 manifest (`--verify DIR` re-checks one)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)
    parser.add_argument("--verify", metavar="DIR", default=None,
                        help="re-check an export's files against its manifest (sha256) instead of exporting")
    parser.add_argument("--refresh-card", action="store_true",
                        help="rewrite the export's model card (e.g. with evaluation results) and manifest")


def run(args: argparse.Namespace) -> int:
    if args.verify:
        return _verify_export(args.verify)
    recipe = recipe_from_args(args)
    from finetune.export import refresh_model_card, summary_lines

    if args.refresh_card:
        print(f"model card rewritten: {refresh_model_card(recipe)}")
    else:
        print("\n".join(summary_lines(stages.run_stage("export", recipe))))
    return 0


def _verify_export(directory: str) -> int:
    """Exit 1 and list the problems when the export's files do not match its manifest."""
    from finetune.export import verify_bundle

    problems = verify_bundle(directory)
    if problems:
        print(f"{directory}: {len(problems)} problem(s)", file=sys.stderr)
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 1
    count = len(json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))["files"])
    print(f"{directory}: all {count} files match the manifest")
    return 0
