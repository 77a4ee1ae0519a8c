"""Schema of the data-preparation section of a recipe.

One place says what a run may be told; ``extra="forbid"`` turns a typo into an error instead of a
silently ignored setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Lang = Literal["ru", "kk", "zh"]
TaskName = Literal["structured_summary", "lab_explanation"]

LANGS: tuple[str, ...] = ("ru", "kk", "zh")
TASK_NAMES: tuple[str, ...] = ("structured_summary", "lab_explanation")


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None, description="Records file; None uses the bundled synthetic sample for `lang`."
    )
    format: Literal["clinic_records"] = Field(
        default="clinic_records", description="Reader to use (see data_prep.readers.READERS)."
    )
    lang: Lang = Field(description="Language of the records; records declaring another one are rejected.")
    tasks: list[TaskName] = Field(
        default_factory=lambda: list(TASK_NAMES), description="Tasks to build examples for."
    )


class DeidConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Redact personal data from free text before use.")


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    validation: float = Field(default=0.1, description="Share of patients held out for validation.")
    test: float = Field(default=0.1, description="Share of patients held out for the final test.")
    seed: int = Field(default=42, description="Seed of the patient shuffle; same seed, same split.")

    @model_validator(mode="after")
    def _fractions_leave_room_for_training(self) -> SplitConfig:
        for name in ("validation", "test"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"split.{name}={value} must be in [0, 1), e.g. 0.1 for 10% of patients")
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"split.validation + split.test = {self.validation + self.test} leaves no patients for "
                "training; keep the sum below 1 (e.g. 0.1 and 0.1)"
            )
        return self


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_chars: int = Field(default=20, ge=0, description="Reject examples whose answer is shorter than this.")
    max_tokens: int | None = Field(
        default=1024,
        ge=1,
        description="Reject examples longer than this in tokens; needs a token counter, None disables.",
    )
    dedup: bool = Field(default=True, description="Drop exact duplicates of a message list.")


def _bundled_sources() -> list[SourceConfig]:
    return [SourceConfig(lang=lang) for lang in LANGS]


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(
        default_factory=_bundled_sources, description="Record files to read; default: the bundled samples."
    )
    deid: DeidConfig = Field(default_factory=DeidConfig, description="De-identification settings.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/validation/test split.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Example filters.")
    patient_salt: str = Field(
        default="medtune", description="Salt for hashing patient ids into group keys; keep it private."
    )
