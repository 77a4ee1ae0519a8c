"""The data section of a recipe: defaults that run out of the box, errors that say how to fix them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from data_prep.config import DataConfig, QualityConfig, SourceConfig, SplitConfig, path_overlap


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


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": 100_000}, "workers"),
        ({"quality": {"near_dup_threshold": float("nan")}}, "quality.near_dup_threshold"),
        ({"quality": {"max_tokens": "1e400"}}, "quality.max_tokens"),
        ({"quality": {"max_tokens": 10**9}}, "quality.max_tokens"),
        ({"split": {"validation": float("nan")}}, "split.validation"),
        ({"split": {"seed": -1}}, "split.seed"),
        ({"deid": {"max_shift_days": 10**6}}, "deid.max_shift_days"),
    ],
)
def test_out_of_range_numbers_are_errors_that_name_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        DataConfig.model_validate(raw)
    assert ".".join(map(str, error.value.errors()[0]["loc"])) == field


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [("workers", None, 0), ("quality", "min_chars", -1), ("split", "seed", 2**40), ("deid", "max_shift_days", 0)],
)
def test_assignment_is_validated_too(section: str, field: str | None, value: int) -> None:
    """The CLI assigns settings (e.g. --workers) to a loaded config: that goes through the same checks."""
    config = DataConfig()
    target, name = (config, section) if field is None else (getattr(config, section), field)
    with pytest.raises(ValidationError, match=name):
        setattr(target, name, value)


@pytest.mark.parametrize(
    ("source", "out", "expected"),
    [
        ("d/x.jsonl", "d", "the source file d/x.jsonl is inside the output folder d"),
        ("d", "d/out", "the output folder d/out is inside the source folder d"),
        ("d", "d", "the output folder d is the source folder d itself"),
        ("d/x.jsonl", "e", None),
        ("d/x.jsonl", "d/x", None),
    ],
)
def test_path_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, out: str,
                      expected: str | None) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jsonl").write_text("{}\n", encoding="utf-8")
    assert path_overlap(source, out) == expected
