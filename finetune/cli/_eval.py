"""`medtune eval`: the recipe's eval stage, against models medtune serves itself or at an endpoint."""

from __future__ import annotations

import argparse
import sys

from finetune import stages
from finetune.cli._args import add_recipe_args, api_key, recipe_from_args
from finetune.recipe import RecipeError

DESCRIPTION = (
    "Send the test split and the benchmark suites through an OpenAI-compatible API for base and tuned; "
    "write report.md, report.html and report.json (metrics per language and task, paired 95% intervals, "
    "significance, side-by-side examples)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)
    parser.add_argument("--endpoint", default=None,
                        help="an OpenAI-compatible server (medtune, vLLM, Ollama) instead of starting one")
    parser.add_argument("--api-key-env", default=None, help="environment variable with the bearer token")
    parser.add_argument("--model", default=None, help="the tuned model's name at --endpoint (default: tuned)")
    parser.add_argument("--base-model", default="base",
                        help="the base model's name (default: base); 'none' evaluates --model alone")
    parser.add_argument("--base-endpoint", default=None, help="where the base model is served, if elsewhere")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="requests in flight at once (default: eval.concurrency)")
    parser.add_argument("--no-cache", action="store_true", help="ask again instead of reusing cached answers")
    parser.add_argument("--cache-tag", default=None, metavar="TAG",
                        help="name the served checkpoint in cache keys instead of probing the endpoint; "
                        "change it when the weights change (default: eval.cache_tag)")


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    if args.endpoint is None and (args.model or args.base_endpoint):
        raise RecipeError("--model and --base-endpoint need --endpoint (without it medtune serves the recipe's "
                          "base and tuned models itself)")
    if args.concurrency is not None and args.concurrency < 1:
        raise RecipeError(f"--concurrency must be at least 1, got {args.concurrency}")
    out = stages.run_stage(
        "eval", recipe, endpoint=args.endpoint, api_key=api_key(args.api_key_env), model=args.model,
        base_model=None if args.base_model.lower() == "none" else args.base_model,
        base_endpoint=args.base_endpoint, concurrency=args.concurrency,
        use_cache=False if args.no_cache else None, cache_tag=args.cache_tag,
    )
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"report.html and report.json in {out}", file=sys.stderr)
    return 0
