"""`medtune prepare`: the recipe's prepare stage, or the ad-hoc form on one export file without a recipe."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from finetune import stages
from finetune.cli._args import add_recipe_args, positive_int, recipe_from_args

DESCRIPTION = (
    "Convert the recipe's clinic records into de-identified chat examples: "
    "DATA_DIR/{train,validation,test}.jsonl, rejects.jsonl and a data card."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe arguments, then the ad-hoc form: `medtune prepare --source notes.csv --out data/`."""
    add_recipe_args(parser)
    parser.add_argument("--source", default=None,
                        help="an export file or folder to prepare instead of the recipe's")
    parser.add_argument("--format", default="auto", help="clinic_records, fhir, hl7v2, ccda, notes, brat, dialogue, "
                        "exam, chat, glossary or auto (default)")
    parser.add_argument("--lang", default="auto", help="ru, kk, zh, en or auto (default: detected per record)")
    parser.add_argument("--task", action="append", default=None, help="task to build (repeatable; default: the "
                        "format's tasks)")
    parser.add_argument("--encoding", default="auto", help="text encoding of --source (default: detected)")
    parser.add_argument("--out", default=None, help="output folder for --source (default: ./prepared)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes for de-identification and tasks (at least 1)")
    parser.add_argument("--preview", type=positive_int, default=None, metavar="N",
                        help="print the first N converted (de-identified) examples instead of writing files")


def run(args: argparse.Namespace) -> int:
    """`medtune prepare` in its recipe or ad-hoc form, with an optional preview."""
    return _prepare_recipe(args) if args.source is None else _prepare_source(args)


def _prepare_recipe(args: argparse.Namespace) -> int:
    from data_prep.prepare import check_output_dir, preview

    recipe = recipe_from_args(args)
    if args.workers is not None:
        recipe.data.workers = args.workers  # checked against the schema on assignment
    if args.preview is not None:
        return _print_preview(preview(recipe.data, args.preview))
    replaced = check_output_dir(recipe.data, recipe.data_dir)  # before the base model is built
    card = stages.run_stage("prepare", recipe)
    print(f"prepared {card['examples']['written']} examples in {recipe.data_dir}")
    _print_replaced(replaced, recipe.data_dir)
    return 0


def _prepare_source(args: argparse.Namespace) -> int:
    from data_prep.config import DataConfig, SourceConfig
    from data_prep.prepare import check_output_dir, prepare, preview

    source = SourceConfig.model_validate(
        {"path": args.source, "format": args.format, "lang": args.lang, "tasks": args.task, "encoding": args.encoding}
    )
    config = DataConfig(sources=[source], workers=args.workers if args.workers is not None else 1)
    if args.preview is not None:
        return _print_preview(preview(config, args.preview))
    out = Path(args.out or "prepared")
    replaced = check_output_dir(config, out)
    card = prepare(config, out, progress=sys.stderr.isatty())
    records = card["records"]
    print(f"prepared {card['examples']['written']} examples in {out} ({records['rejected']} of {records['in']} "
          f"records rejected, {records.get('skipped', 0)} skipped: see {out / 'rejects.jsonl'} and the data card)")
    _print_replaced(replaced, out)
    return 0


def _print_replaced(replaced: list[Path], out: Path) -> None:
    """Say when an earlier prepare's files were overwritten, so it never happens unnoticed."""
    if replaced:
        print(f"replaced {len(replaced)} file{'s' if len(replaced) != 1 else ''} of an earlier prepare in {out}: "
              f"{', '.join(p.name for p in replaced)}")


def _print_preview(examples: list) -> int:
    for example in examples:
        print(json.dumps(example.to_json(), ensure_ascii=False, indent=2))
    return 0
