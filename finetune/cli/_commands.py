"""`main`: parse the command line, run the verb from the verb table, and turn its errors into one line and exit 2."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from finetune.cli._parser import VERBS, build_parser
from finetune.recipe import RecipeError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("finetune").setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        return VERBS[args.verb].run(args)
    except (RecipeError, OSError, ValueError, RuntimeError) as exc:
        if hasattr(exc, "errors") and callable(exc.errors):  # pydantic: one line per problem
            exc = ValueError("; ".join(_pydantic_problem(e) for e in exc.errors()))
        print(f"medtune {args.verb}: error: {exc}", file=sys.stderr)
        return 2


def _pydantic_problem(error: dict) -> str:
    """One pydantic error as `field: problem (got value)`."""
    line = f"{'.'.join(map(str, error['loc'])) or 'value'}: {str(error['msg']).removeprefix('Value error, ')}"
    got = error.get("input")
    return line if isinstance(got, dict | list) or error["type"] == "value_error" else f"{line} (got {got!r})"
