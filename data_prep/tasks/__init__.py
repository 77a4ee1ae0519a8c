"""Tasks: what a record becomes (chat examples per task and language) and the prompts they are asked with."""

from data_prep.tasks._build import TASKS
from data_prep.tasks._prompts import Prompts
from data_prep.tasks._references import REFERENCE_TASKS, prompt_only

__all__ = ["REFERENCE_TASKS", "TASKS", "Prompts", "prompt_only"]
