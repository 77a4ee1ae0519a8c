"""The `medtune` command line: one private module per verb (its description, arguments and run function), the
verb table and parser built from them, and `main`, which runs the verb the command line names."""

from finetune.cli._commands import main
from finetune.cli._parser import build_parser

__all__ = ["build_parser", "main"]
