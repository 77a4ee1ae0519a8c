"""`medtune` command line: one verb per stage, `run` for all of them, `validate` and `tiny-model` helpers."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from finetune.recipe import Recipe, RecipeError, load_recipe

DESCRIPTIONS = {
    "prepare": "Convert the recipe's clinic records into de-identified chat examples: "
    "DATA_DIR/{train,validation,test}.jsonl, rejects.jsonl and a data card.",
    "train": "Train the recipe's QLoRA adapter with TRL's SFTTrainer on the prepared train split "
    "(loss on the model's turns only).",
    "export": "Merge the adapter into full-precision base weights and write a bundle other services load: "
    "sharded safetensors, the adapter alone for vLLM, GGUF with an Ollama Modelfile, a model card, NOTICE, the "
    "measured merge difference and a sha256 manifest (`--verify DIR` re-checks one).",
    "serve": "Serve the base and the tuned model (and any --adapter/--merged) behind an OpenAI-compatible HTTP "
    "API (/v1/chat/completions with streaming, /v1/models, /v1/score, /health, /metrics), batching concurrent "
    "requests, on 127.0.0.1 unless told otherwise.",
    "eval": "Send the test split and the benchmark suites through an OpenAI-compatible API for base and tuned; "
    "write report.md, report.html and report.json (metrics per language and task, paired 95% intervals, "
    "significance, side-by-side examples).",
    "run": "Run every stage of a recipe in order: prepare, train, export, eval.",
    "validate": "Check a recipe (and overrides) without loading any model; prints the resolved recipe.",
    "plan": "Estimate peak GPU memory of a recipe's QLoRA training from the model config alone (no weights) "
    "and suggest settings that fit 8, 12, 16 and 24 GiB cards (or --gpu-mem).",
    "tiny-model": "Build a tiny Gemma 3 model with random weights and a tokenizer trained on the bundled text.",
}
RECIPE_HELP = "recipe YAML (default: the embedded tiny demo), then section.key=value overrides"


def _positive_int(text: str) -> int:
    """argparse type for counts: `int` alone would let 0 and -1 through (`--preview -1` printed one example)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    """argparse type for a TCP port (0 lets the system choose one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def _help(text: str) -> str:
    """argparse reads help texts as %-formats: a '95%' in a description would crash `medtune --help`."""
    return text.replace("%", "%%")


def _add_recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", default=None, help=RECIPE_HELP)
    parser.add_argument("overrides", nargs="*", default=[], help="e.g. train.learning_rate=1e-4")
    parser.add_argument("--profile", default=None, help="apply one of the recipe's profiles, e.g. 8gb")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medtune",
        description="Adapt MedGemma to the clinical language of Russian, Kazakh and Chinese clinics.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in ("prepare", "train", "export", "serve", "eval", "run", "validate"):
        sub = verbs.add_parser(verb, help=_help(DESCRIPTIONS[verb]), description=DESCRIPTIONS[verb])
        _add_recipe_args(sub)
        if verb == "train":
            sub.add_argument("--resume", action="store_true",
                             help="continue a stopped run from its last checkpoint (same recipe, same data order)")
        if verb == "prepare":
            _add_prepare_args(sub)
        if verb == "export":
            sub.add_argument("--verify", metavar="DIR", default=None,
                             help="re-check an export's files against its manifest (sha256) instead of exporting")
            sub.add_argument("--refresh-card", action="store_true",
                             help="rewrite the export's model card (e.g. with evaluation results) and manifest")
        if verb in ("serve",):
            sub.add_argument("--host", default=None, help="bind address (default: serve.host, 127.0.0.1)")
            sub.add_argument("--port", type=_port, default=None, help="port (default: serve.port)")
            sub.add_argument("--api-key-env", default=None,
                             help="name of an environment variable holding a bearer token clients must send")
            sub.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                             help="also serve base+this LoRA adapter as model NAME (repeatable; shares base weights)")
            sub.add_argument("--merged", action="append", default=[], metavar="NAME=DIR",
                             help="also serve this merged checkpoint as model NAME (repeatable)")
            sub.add_argument("--log-text", action="store_true",
                             help="log prompts and completions (patient text!): for debugging on test data only")
        if verb == "eval":
            sub.add_argument("--endpoint", default=None,
                             help="an OpenAI-compatible server (medtune, vLLM, Ollama) instead of starting one")
            sub.add_argument("--api-key-env", default=None, help="environment variable with the bearer token")
            sub.add_argument("--model", default=None, help="the tuned model's name at --endpoint (default: tuned)")
            sub.add_argument("--base-model", default="base",
                             help="the base model's name (default: base); 'none' evaluates --model alone")
            sub.add_argument("--base-endpoint", default=None, help="where the base model is served, if elsewhere")
            sub.add_argument("--concurrency", type=int, default=None,
                             help="requests in flight at once (default: eval.concurrency)")
            sub.add_argument("--no-cache", action="store_true", help="ask again instead of reusing cached answers")
            sub.add_argument("--cache-tag", default=None, metavar="TAG",
                             help="name the served checkpoint in cache keys instead of probing the endpoint; "
                             "change it when the weights change (default: eval.cache_tag)")
    plan = verbs.add_parser("plan", help=_help(DESCRIPTIONS["plan"]), description=DESCRIPTIONS["plan"])
    _add_recipe_args(plan)
    plan.add_argument("--gpu-mem", default=None, help="GPU memory to plan for, e.g. 8GiB or 24GB")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    tiny = verbs.add_parser("tiny-model", help=_help(DESCRIPTIONS["tiny-model"]),
                            description=DESCRIPTIONS["tiny-model"])
    tiny.add_argument("out", help="directory to write the model to")
    tiny.add_argument("--variant", choices=("causal", "image_text"), default="causal",
                      help="Gemma3ForCausalLM or Gemma3ForConditionalGeneration (tiny vision tower)")
    tiny.add_argument("--seed", type=int, default=0, help="the same seed builds the same model")
    return parser


def _add_prepare_args(sub: argparse.ArgumentParser) -> None:
    """The ad-hoc form: one export file, no recipe (`medtune prepare --source notes.csv --out data/`)."""
    sub.add_argument("--source", default=None, help="an export file or folder to prepare instead of the recipe's")
    sub.add_argument("--format", default="auto", help="clinic_records, fhir, hl7v2, ccda, notes, brat, dialogue, "
                     "exam, chat, glossary or auto (default)")
    sub.add_argument("--lang", default="auto", help="ru, kk, zh, en or auto (default: detected per record)")
    sub.add_argument("--task", action="append", default=None, help="task to build (repeatable; default: the "
                     "format's tasks)")
    sub.add_argument("--encoding", default="auto", help="text encoding of --source (default: detected)")
    sub.add_argument("--out", default=None, help="output folder for --source (default: ./prepared)")
    sub.add_argument("--workers", type=_positive_int, default=None,
                     help="processes for de-identification and tasks (at least 1)")
    sub.add_argument("--preview", type=_positive_int, default=None, metavar="N",
                     help="print the first N converted (de-identified) examples instead of writing files")


def _prepare(args: argparse.Namespace) -> int:
    """`medtune prepare` in its recipe or ad-hoc form, with an optional preview."""
    from data_prep.config import DataConfig, SourceConfig
    from data_prep.prepare import check_output_dir, prepare, preview
    from finetune import stages as pipeline

    if args.source is None:
        recipe = _recipe(args)
        if args.workers is not None:
            recipe.data.workers = args.workers  # checked against the schema on assignment
        if args.preview is not None:
            return _print_preview(preview(recipe.data, args.preview))
        replaced = check_output_dir(recipe.data, recipe.data_dir)  # before the base model is built
        card = pipeline.prepare_stage(recipe)
        print(f"prepared {card['examples']['written']} examples in {recipe.data_dir}")
        _print_replaced(replaced, recipe.data_dir)
        return 0
    source = SourceConfig.model_validate(
        {"path": args.source, "format": args.format, "lang": args.lang, "tasks": args.task, "encoding": args.encoding}
    )
    config = DataConfig(sources=[source], workers=args.workers if args.workers is not None else 1)
    if args.preview is not None:
        return _print_preview(preview(config, args.preview))
    out = Path(args.out or "prepared")
    replaced = check_output_dir(config, out)
    card = prepare(config, out, progress=sys.stderr.isatty())
    print(f"prepared {card['examples']['written']} examples in {out} "
          f"({card['records']['rejected']} of {card['records']['in']} records rejected: see {out / 'rejects.jsonl'})")
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


def _split_recipe_args(recipe: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """`medtune run train.max_steps=2` means: the embedded recipe with one override."""
    if recipe is not None and "=" in recipe and not Path(recipe).exists():
        return None, [recipe, *overrides]
    return recipe, overrides


def _recipe(args: argparse.Namespace) -> Recipe:
    path, overrides = _split_recipe_args(args.recipe, args.overrides)
    return load_recipe(path, overrides, getattr(args, "profile", None))


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise RecipeError(f"--api-key-env {env_name}: that environment variable is not set")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("finetune").setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        return _dispatch(args)
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


def _verify_export(directory: str) -> int:
    from finetune.export import verify_bundle

    problems = verify_bundle(directory)
    if problems:
        print(f"{directory}: {len(problems)} problem(s)", file=sys.stderr)
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 1
    count = len(json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))["files"])
    print(f"{directory}: all {count} files match the manifest")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    from finetune import stages as pipeline

    if args.verb == "tiny-model":
        from finetune.models import build_tiny_model
        from finetune.recipe import TinyModelConfig

        out = build_tiny_model(args.out, TinyModelConfig(variant=args.variant, seed=args.seed))
        print(f"tiny {args.variant} Gemma 3 model written to {out}")
        return 0
    if args.verb == "prepare":
        return _prepare(args)
    if args.verb == "export" and args.verify:
        return _verify_export(args.verify)
    recipe = _recipe(args)
    if args.verb == "plan":
        from finetune.train import plan_recipe, render_plan

        report = plan_recipe(recipe, args.gpu_mem)
        print(json.dumps(report, indent=2) if args.json else render_plan(report))
        fits = [*report["profiles"].values(), *(report["suggestions"].values() if args.gpu_mem is not None else ())]
        return 0 if all(p["fits"] for p in fits) else 1
    if args.verb == "validate":
        print(json.dumps(recipe.model_dump(mode="json"), indent=2, ensure_ascii=False))
        print(f"recipe {recipe.name!r} is valid", file=sys.stderr)
        return 0
    if args.verb == "train":
        print(f"adapter written to {pipeline.train_stage(recipe, resume=args.resume)}")
    elif args.verb == "export":
        from finetune.export import refresh_model_card, summary_lines

        if args.refresh_card:
            print(f"model card rewritten: {refresh_model_card(recipe)}")
        else:
            print("\n".join(summary_lines(pipeline.export_stage(recipe))))
    elif args.verb == "eval":
        from finetune.eval import evaluate

        if args.endpoint is None and (args.model or args.base_endpoint):
            raise RecipeError("--model and --base-endpoint need --endpoint (without it medtune serves the recipe's "
                              "base and tuned models itself)")
        if args.concurrency is not None and args.concurrency < 1:
            raise RecipeError(f"--concurrency must be at least 1, got {args.concurrency}")
        out = evaluate(
            recipe, endpoint=args.endpoint, api_key=_api_key(args.api_key_env), model=args.model,
            base_model=None if args.base_model.lower() == "none" else args.base_model,
            base_endpoint=args.base_endpoint, concurrency=args.concurrency,
            use_cache=False if args.no_cache else None, cache_tag=args.cache_tag,
        )
        print((out / "report.md").read_text(encoding="utf-8"))
        print(f"report.html and report.json in {out}", file=sys.stderr)
    elif args.verb == "run":
        out = pipeline.run_all(recipe)
        print((out / "report.md").read_text(encoding="utf-8"))
        print(f"all outputs under {recipe.root}")
    elif args.verb == "serve":
        from finetune.serve import models_for_recipe, serve

        host = args.host or recipe.serve.host
        port = args.port if args.port is not None else recipe.serve.port
        models = models_for_recipe(recipe, adapters=_named_paths(args.adapter, "--adapter"),
                                   merged=_named_paths(args.merged, "--merged"))
        print(f"serving {', '.join(models)} on http://{host}:{port}/v1", file=sys.stderr)
        serve(models, host=host, port=port, api_key=_api_key(args.api_key_env),
              max_batch_size=recipe.serve.max_batch_size, batch_wait_ms=recipe.serve.batch_wait_ms,
              max_tokens_limit=recipe.serve.max_tokens_limit, max_body_bytes=recipe.serve.max_body_bytes,
              log_text=args.log_text or recipe.serve.log_text)
    return 0
