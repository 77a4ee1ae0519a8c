"""Before/after evaluation through an OpenAI-compatible API: suites, client, answer cache, answer parsing,
metrics, paired statistics, the judge and the report (`evaluate` runs it all)."""

from finetune.eval._cache import GenerationCache
from finetune.eval._client import APIClient, ServedModel
from finetune.eval._run import evaluate
from finetune.eval._suites import load_suite

__all__ = ["APIClient", "GenerationCache", "ServedModel", "evaluate", "load_suite"]
