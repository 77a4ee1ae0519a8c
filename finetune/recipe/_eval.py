"""The `eval` section of a recipe: which suites to run, how to talk to the API, and the statistics settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from data_prep.config import ConfigSection

SuiteFormat = Literal["mcq", "yesno", "icd10", "extraction", "open_qa", "dialogue", "safety"]
SUITE_FORMATS: tuple[str, ...] = ("mcq", "yesno", "icd10", "extraction", "open_qa", "dialogue", "safety")
EvalLang = Literal["ru", "kk", "zh", "en"]
MIN_PAIRED_EXAMPLES = 10
"""Fewest paired examples a group needs before a difference may be called significant (eval.min_paired_examples).

Below it a bootstrap resamples a handful of items, whose interval can exclude zero by chance (with two items
it often does), and McNemar's test has almost no power; such groups keep their numbers but claim nothing.
"""


class SuiteConfig(ConfigSection):
    """One evaluation set in a public benchmark format (see finetune/eval/_formats.py for the fields read)."""

    format: SuiteFormat = Field(
        description="mcq (MedQA/MedMCQA/RuMedTest-style exams), yesno (PubMedQA/RuMedDaNet: question + context), "
        "icd10 (complaints → code, RuMedTop3-style), extraction (CMeEE-style entities), open_qa (case-based "
        "questions), dialogue (doctor replies), safety (risky prompts that must be referred to a doctor)."
    )
    path: str | None = Field(
        None, description="A .jsonl or .json file; omitted: the small bundled sample suite for this format."
    )
    name: str | None = Field(None, description="Label in the report; default: the format (or the file's stem).")
    lang: EvalLang | None = Field(
        None, description="Language of items that do not name one; for bundled samples, the only one to run "
        "(omitted: the languages of the recipe's data sources)."
    )
    max_items: int | None = Field(None, ge=1, description="Evaluate at most this many items per language.")
    max_new_tokens: int | None = Field(None, ge=1, description="Token limit for this suite (default: eval's).")


def bundled_suites() -> list[SuiteConfig]:
    """Every format's bundled sample suite: what `eval.suites: samples` stands for."""
    return [SuiteConfig(format=name) for name in SUITE_FORMATS]  # type: ignore[arg-type]


class JudgeConfig(ConfigSection):
    """A judge model behind an OpenAI-compatible endpoint that compares base and tuned answers side by side.

    The judge sees the prompts, references and answers: point it only at a server inside the clinic.
    """

    endpoint: str = Field(description="Base URL of the judge's OpenAI-compatible server, e.g. http://127.0.0.1:8001")
    model: str = Field(description="Model name at that endpoint.")
    api_key_env: str | None = Field(None, description="Environment variable holding the judge's bearer token.")
    max_items: int | None = Field(200, ge=1, description="Judge at most this many free-text items.")
    max_tokens: int = Field(512, ge=1)


class EvalConfig(ConfigSection):
    """Before/after evaluation on the test split and benchmark suites, through the serving API."""

    max_examples: int | None = Field(None, ge=1, description="Evaluate at most this many test examples.")
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1, description="Conversations per /v1/score request (held-out loss).")
    tuned: Literal["merged", "adapter"] = Field(
        "merged", description="What stands for the tuned model: the merged export (what is deployed) or "
        "base+adapter."
    )
    suites: list[SuiteConfig] = Field(
        default_factory=list,
        description="Benchmark suites besides the test split (default: none). Point `path` at real ones; "
        "`samples` runs the small bundled sample suite of every format (synthetic: a demonstration, not evidence).",
    )
    glossary: str | None = Field(
        None, description="Terminology glossary (.jsonl/.csv/.tsv: lang, term, variants, avoid); omitted: the "
        "bundled sample glossary."
    )
    terminology: bool = Field(True, description="Score terminology adherence against the glossary.")
    concurrency: int = Field(8, ge=1, description="Generation requests in flight at once.")
    cache: bool = Field(True, description="Reuse generations cached in EVAL_DIR/cache.jsonl (keyed by model, "
                        "prompt and settings), so re-runs and interrupted runs do not regenerate. An endpoint's "
                        "models are identified by the weights fingerprint its /v1/models publishes (medtune's "
                        "server), else by `cache_tag`, else by the answer to a short fixed probe request.")
    cache_tag: str | None = Field(
        None, min_length=1, description="Names the served checkpoint in the cache key instead of probing the "
        "endpoint (e.g. a training run id): change it whenever the weights behind the endpoint change."
    )
    bootstrap_resamples: int = Field(1000, ge=100, description="Paired bootstrap resamples per difference.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of intervals and tests.")
    seed: int = Field(0, description="Seed of the bootstrap: the same seed gives the same intervals.")
    min_paired_examples: int = Field(
        MIN_PAIRED_EXAMPLES, ge=2, description="Fewest paired examples a task/language group needs before a "
        "difference is called significant; smaller groups show their numbers and intervals, and the report says "
        "that n is too small for a significance claim."
    )
    examples_shown: int = Field(5, ge=0, description="Side-by-side examples shown per direction of change.")
    judge: JudgeConfig | None = Field(None, description="Optional judge model; off unless set.")

    @field_validator("suites", mode="before")
    @classmethod
    def _samples_shorthand(cls, value: object) -> object:
        return bundled_suites() if value == "samples" else value

    @model_validator(mode="after")
    def _suite_names_are_unique(self) -> EvalConfig:
        seen: set[str] = set()
        for suite in self.suites:
            label = suite_label(suite)
            key = f"{label}/{suite.lang or '*'}"
            if key in seen:
                raise ValueError(f"two suites are both called {label!r}: give one of them a `name`")
            seen.add(key)
        return self


def suite_label(suite: SuiteConfig) -> str:
    """The name a suite is reported under."""
    if suite.name:
        return suite.name
    if suite.path:
        from pathlib import Path

        return Path(suite.path).stem
    return suite.format
