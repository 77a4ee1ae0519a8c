"""Tasks: what a record becomes (chat examples per task and language, or one raw text row), the prompts they are
asked with, and the shape a well-formed answer of each task keeps (`format_check`)."""

from data_prep.tasks._build import TASKS
from data_prep.tasks._format import FormatCheck, format_check
from data_prep.tasks._prompts import Prompts
from data_prep.tasks._references import REFERENCE_TASKS, prompt_only

__all__ = ["REFERENCE_TASKS", "TASKS", "FormatCheck", "Prompts", "format_check", "prompt_only"]
