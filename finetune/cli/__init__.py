"""The `medtune` command line: `main` parses the verb and runs it."""

from finetune.cli._commands import build_parser, main

__all__ = ["build_parser", "main"]
