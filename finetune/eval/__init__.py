"""Before/after evaluation through an OpenAI-compatible API.

`evaluate` sends the recipe's test split and benchmark suites to the base and tuned models (medtune's own
server, or any endpoint), caches every answer, scores it, compares the two models with paired statistics
(and optionally a judge model) and writes report.{json,md,html} and generations.jsonl. The client, cache and
suite loader are exported for scripts that drive a served model directly; the answer parsers and the entity and
language checks, for training rewards that score answers exactly as the report does.
"""

from finetune.eval._answers import (
    icd10_matches,
    normalize_text,
    parse_choice,
    parse_entities,
    parse_icd10_codes,
    parse_yes_no,
)
from finetune.eval._cache import GenerationCache
from finetune.eval._client import APIClient, EndpointError, ServedModel
from finetune.eval._metrics import detect_language, entity_counts
from finetune.eval._run import evaluate
from finetune.eval._suite_files import SuiteError
from finetune.eval._suites import load_suite

__all__ = [
    "APIClient",
    "EndpointError",
    "GenerationCache",
    "ServedModel",
    "SuiteError",
    "detect_language",
    "entity_counts",
    "evaluate",
    "icd10_matches",
    "load_suite",
    "normalize_text",
    "parse_choice",
    "parse_entities",
    "parse_icd10_codes",
    "parse_yes_no",
]
