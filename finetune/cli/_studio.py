"""`medtune studio`: the local web page for reviewing de-identification, running the stages and reading the report."""

from __future__ import annotations

import argparse

from finetune.cli._args import add_recipe_args, port, split_recipe_args

DESCRIPTION = (
    "A local web page: review de-identification on a source, run the recipe's stages with live progress, read the "
    "report and compare base and tuned. Loopback only unless a token (--token-env) guards every request."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=port, default=7860, help="port (default 7860)")
    parser.add_argument("--token-env", default="MEDTUNE_STUDIO_TOKEN", metavar="VAR",
                        help="environment variable holding the token every request needs when --host is not "
                        "loopback (default MEDTUNE_STUDIO_TOKEN)")


def run(args: argparse.Namespace) -> int:
    from finetune.studio import serve_studio

    recipe, overrides = split_recipe_args(args.recipe, args.overrides)
    serve_studio({"recipe": recipe, "overrides": overrides, "profile": args.profile}, args.host, args.port,
                 args.token_env)
    return 0
