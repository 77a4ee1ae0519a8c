"""`medtune serve`: the base, the tuned model and any other adapters or merged checkpoints behind one API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finetune.cli._args import add_recipe_args, api_key, port, recipe_from_args
from finetune.recipe import RecipeError

DESCRIPTION = (
    "Serve the base and the tuned model (and any --adapter/--merged) behind an OpenAI-compatible HTTP "
    "API (/v1/chat/completions with streaming, /v1/models, /v1/score, /health, /metrics), batching concurrent "
    "requests, on 127.0.0.1 unless told otherwise."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)
    parser.add_argument("--host", default=None, help="bind address (default: serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=port, default=None, help="port (default: serve.port)")
    parser.add_argument("--api-key-env", default=None,
                        help="name of an environment variable holding a bearer token clients must send")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                        help="also serve base+this LoRA adapter as model NAME (repeatable; shares base weights)")
    parser.add_argument("--merged", action="append", default=[], metavar="NAME=DIR",
                        help="also serve this merged checkpoint as model NAME (repeatable)")
    parser.add_argument("--log-text", action="store_true",
                        help="log prompts and completions (patient text!): for debugging on test data only")


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    from finetune.serve import models_for_recipe, serve

    host = args.host or recipe.serve.host
    port_number = args.port if args.port is not None else recipe.serve.port
    models = models_for_recipe(recipe, adapters=_named_paths(args.adapter, "--adapter"),
                               merged=_named_paths(args.merged, "--merged"))
    print(f"serving {', '.join(models)} on http://{host}:{port_number}/v1", file=sys.stderr)
    serve(models, host=host, port=port_number, api_key=api_key(args.api_key_env),
          max_batch_size=recipe.serve.max_batch_size, batch_wait_ms=recipe.serve.batch_wait_ms,
          max_tokens_limit=recipe.serve.max_tokens_limit, max_body_bytes=recipe.serve.max_body_bytes,
          log_text=args.log_text or recipe.serve.log_text)
    return 0


def _named_paths(items: list[str], flag: str) -> dict[str, Path]:
    """`NAME=DIR` arguments as a mapping; a missing `=` or a repeated name is an error that says so."""
    named: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise RecipeError(f"{flag} {item!r}: expected NAME=DIR, e.g. {flag} kk=runs/kk/adapter")
        if name in named:
            raise RecipeError(f"{flag}: model name {name!r} given twice")
        named[name] = Path(path)
    return named
