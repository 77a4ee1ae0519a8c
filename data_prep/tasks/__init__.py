"""Tasks: what a record becomes (chat examples per task and language) and the prompts they are asked with."""

from data_prep.tasks._build import TASKS
from data_prep.tasks._prompts import Prompts

__all__ = ["TASKS", "Prompts"]
