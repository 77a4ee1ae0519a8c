"""The data section of a recipe: defaults that run out of the box, errors that say how to fix them."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from data_prep.config import DataConfig, QualityConfig, SourceConfig, SplitConfig


def test_defaults_use_the_three_bundled_samples_with_both_tasks() -> None:
    config = DataConfig()
    assert [s.lang for s in config.sources] == ["ru", "kk", "zh"]
    assert all(s.path is None and s.format == "clinic_records" for s in config.sources)
    assert all(s.tasks == ["structured_summary", "lab_explanation"] for s in config.sources)
    assert config.deid.enabled
    assert (config.split.validation, config.split.test, config.split.seed) == (0.1, 0.1, 42)
    assert (config.quality.min_chars, config.quality.max_tokens, config.quality.dedup) == (20, 1024, True)
    assert config.patient_salt == "medtune"


def test_default_task_lists_are_not_shared_between_sources() -> None:
    a, b = SourceConfig(lang="ru"), SourceConfig(lang="kk")
    a.tasks.append("lab_explanation")
    assert b.tasks == ["structured_summary", "lab_explanation"]


def test_every_field_is_described() -> None:
    for model in (DataConfig, SourceConfig, SplitConfig, QualityConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize(
    "raw",
    [
        {"sources": [{"lang": "ru", "pth": "x.jsonl"}]},
        {"dedupe": True},
        {"split": {"valid": 0.2}},
    ],
)
def test_unknown_keys_are_errors(raw: dict) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        DataConfig.model_validate(raw)


@pytest.mark.parametrize(
    "raw", [{"lang": "en"}, {"lang": "ru", "tasks": ["translation"]}, {"lang": "ru", "format": "csv"}]
)
def test_unsupported_choices_are_errors(raw: dict) -> None:
    with pytest.raises(ValidationError):
        SourceConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("validation", "test", "message"),
    [
        (1.0, 0.1, "must be in \\[0, 1\\)"),
        (-0.1, 0.1, "must be in"),
        (0.5, 0.5, "leaves no patients for training"),
    ],
)
def test_split_fractions_are_checked_with_a_hint(validation: float, test: float, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SplitConfig(validation=validation, test=test)


def test_zero_holdout_is_allowed() -> None:
    assert SplitConfig(validation=0.0, test=0.0).test == 0.0


def test_loads_from_yaml() -> None:
    text = """
    sources:
      - {path: data/kk.jsonl, lang: kk, tasks: [lab_explanation]}
    deid: {enabled: true}
    split: {validation: 0.2, test: 0.2, seed: 7}
    quality: {max_tokens: null}
    """
    config = DataConfig.model_validate(yaml.safe_load(text))
    assert config.sources[0].path == "data/kk.jsonl"
    assert config.sources[0].tasks == ["lab_explanation"]
    assert config.quality.max_tokens is None
    assert config.split.seed == 7
