"""Schema of the data-preparation section of a recipe, and `ConfigSection`, the base of every recipe section.

One place says what a run may be told; ``extra="forbid"`` turns a typo into an error instead of a
silently ignored setting. The base lives here, in the lower layer, so that the data section, the recipe and its
eval section (in finetune) all validate the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Lang = Literal["ru", "kk", "zh", "en"]
SourceLang = Literal["ru", "kk", "zh", "en", "auto"]
TaskName = Literal[
    "structured_summary",
    "lab_explanation",
    "icd10_coding",
    "plain_language",
    "extraction",
    "qa",
    "multiple_choice",
    "dialogue_continuation",
    "chat",
    "term_translation",
    "term_definition",
    "text",
    "preference",
]
FormatName = Literal[
    "auto",
    "clinic_records",
    "fhir",
    "hl7v2",
    "ccda",
    "notes",
    "brat",
    "dialogue",
    "exam",
    "chat",
    "glossary",
    "preference",
]
ContainerName = Literal["auto", "jsonl", "json", "csv", "tsv", "xlsx", "parquet"]

LANGS: tuple[str, ...] = ("ru", "kk", "zh")
"""Languages of the bundled samples (the clinics medtune is built for)."""
SUPPORTED_LANGS: tuple[str, ...] = ("ru", "kk", "zh", "en")
"""Languages a record may be in: the clinics' three, and English for public sets and mixed use."""
TASK_NAMES: tuple[str, ...] = ("structured_summary", "lab_explanation")
"""Default tasks of clinical records (kept as the bundled demo's default)."""
MAX_SEED = 2**32 - 1
"""numpy's seeds stop here; a larger one fails only once training starts."""
MAX_WORKERS = 256
MAX_TOKENS = 131_072
"""Gemma 3's context length: no example can be longer."""

RECORD_KIND_OF_FORMAT: dict[str, str] = {
    "clinic_records": "clinical",
    "fhir": "clinical",
    "hl7v2": "clinical",
    "ccda": "clinical",
    "notes": "clinical",
    "brat": "annotated",
    "dialogue": "dialogue",
    "exam": "question",
    "chat": "chat",
    "glossary": "term",
    "preference": "preference",
}
"""What a reader of each format produces; tasks are defined per record kind."""

TASKS_OF_KIND: dict[str, tuple[str, ...]] = {
    "clinical": ("structured_summary", "lab_explanation", "icd10_coding", "plain_language", "text"),
    "annotated": ("extraction", "text"),
    "dialogue": ("dialogue_continuation", "text"),
    "question": ("qa", "multiple_choice", "text"),
    "chat": ("chat", "text"),
    "term": ("term_translation", "term_definition", "text"),
    "preference": ("preference",),
}
"""`text` (raw text rows for continued pretraining: every text field of the record) applies to every kind."""
DEFAULT_TASKS_OF_KIND: dict[str, tuple[str, ...]] = {
    "clinical": TASK_NAMES,
    "annotated": ("extraction",),
    "dialogue": ("dialogue_continuation",),
    "question": ("qa", "multiple_choice"),
    "chat": ("chat",),
    "term": ("term_translation", "term_definition"),
    "preference": ("preference",),
}


class ConfigSection(BaseModel):
    """Base of every config section: unknown keys, infinities and NaN are errors, and so is a bad value assigned
    later (e.g. by the CLI). `describe_errors` says where each problem is and, for a mistyped key, the closest
    valid one."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @classmethod
    def describe_errors(cls, exc: ValidationError, whole: str) -> list[str]:
        """One line per problem of validating this model: `dotted.key: problem`; `whole` names the model itself
        when the problem is not about one key (e.g. "recipe")."""
        return [_describe(cls, error, whole) for error in exc.errors()]


def _model_at(root: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `path` below `root` (for suggesting close keys)."""
    model: type[BaseModel] | None = root
    for key in path:
        if model is None or not isinstance(key, str) or key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _describe(root: type[BaseModel], error: Mapping[str, Any], whole: str) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(str(p) for p in loc) or whole
    if error["type"] == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        hint = ""
        if owner is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1, cutoff=0.5)
            if close:
                hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?"
            else:
                hint = f"; valid keys here: {', '.join(owner.model_fields)}"
        return f"{dotted}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{dotted}: required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    got = error.get("input")
    if isinstance(got, dict | list) or error["type"] == "value_error":
        return f"{dotted}: {message}"
    return f"{dotted}: {message} (got {got!r})"


def path_overlap(source: str | Path, out_dir: str | Path) -> str | None:
    """How a source and prepare's output folder overlap, if they do: writing there would overwrite the export
    (train.jsonl over a clinic's train.jsonl) or read the outputs back as records on the next run."""
    src, out = Path(source).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    kind = "folder" if src.is_dir() else "file"
    if src == out:
        return f"the output folder {out_dir} is the source {kind} {source} itself"
    if src.is_relative_to(out):
        return f"the source {kind} {source} is inside the output folder {out_dir}"
    if out.is_relative_to(src):
        return f"the output folder {out_dir} is inside the source {kind} {source}"
    return None


def default_tasks(fmt: str) -> list[str]:
    """The tasks a source of format ``fmt`` builds when the recipe names none."""
    return list(DEFAULT_TASKS_OF_KIND[RECORD_KIND_OF_FORMAT[fmt]])


class SourceConfig(ConfigSection):

    path: str | None = Field(
        default=None,
        description="Export file (or BRAT/notes folder); None uses the bundled synthetic sample for `lang`.",
    )
    format: FormatName = Field(
        default="clinic_records",
        description="What the file holds (see data_prep.readers.READERS); `auto` tells it from the content.",
    )
    container: ContainerName = Field(
        default="auto",
        description="File layout of row-shaped formats (clinic_records, exam, chat, glossary, dialogue); "
        "`auto` goes by extension and content.",
    )
    encoding: str = Field(
        default="auto",
        description="Text encoding (utf-8, cp1251, gb18030, utf-16 …); `auto` detects it from BOM and bytes.",
    )
    delimiter: str | None = Field(
        default=None, description="CSV field separator; None sniffs it (comma, semicolon, tab, pipe)."
    )
    sheet: str | None = Field(default=None, description="XLSX sheet to read; None reads the first one.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Record field → column of the file, e.g. {complaints: Жалобы, patient.full_name: ФИО}; "
        "known headings in ru/kk/zh/en are mapped without it.",
    )
    lang: SourceLang = Field(
        description="Language of the records; `auto` detects it per record (lingua). Records that declare "
        "another language than a fixed one are rejected."
    )
    tasks: list[TaskName] | None = Field(
        default=None, description="Tasks to build examples for; None: the defaults of the format."
    )
    eval_only: bool = Field(
        default=False, description="Use this source for evaluation only: its examples never reach train."
    )
    entity_types: dict[str, Literal["symptoms", "diagnoses", "drugs", "labs", "ignore"]] = Field(
        default_factory=dict,
        description="BRAT entity label → extraction category, overriding the guess from the label's name.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}; e.g. utf-8, cp1251, gb18030, utf-16 or auto") from None
        return value

    @model_validator(mode="after")
    def _tasks_fit_the_format(self) -> SourceConfig:
        if self.format == "auto":
            return self
        if self.tasks is None:
            self.tasks = default_tasks(self.format)  # type: ignore[assignment]
            return self
        kind = RECORD_KIND_OF_FORMAT[self.format]
        wrong = [t for t in self.tasks if t not in TASKS_OF_KIND[kind]]
        if wrong:
            raise ValueError(
                f"task(s) {', '.join(wrong)} do not apply to format {self.format!r}; "
                f"choose from {', '.join(TASKS_OF_KIND[kind])}"
            )
        return self

    @model_validator(mode="after")
    def _bundled_needs_a_language(self) -> SourceConfig:
        if self.path is None and self.lang not in LANGS:
            raise ValueError(f"a source without `path` uses the bundled sample, which needs lang in {LANGS}")
        return self


class DeidConfig(ConfigSection):

    enabled: bool = Field(default=True, description="Redact personal data from free text before use.")
    replace_with: Literal["placeholder", "surrogate"] = Field(
        default="placeholder",
        description="Typed placeholders ([ФИО], [电话] …) or consistent per-patient fake values.",
    )
    shift_dates: bool = Field(
        default=False,
        description="Shift dates by a per-patient offset instead of replacing them, keeping intervals.",
    )
    max_shift_days: int = Field(
        default=365, ge=1, le=3650, description="Largest date shift in days, either way (at most ten years)."
    )
    ner: bool = Field(
        default=True,
        description="Also find person names in Russian text with natasha's NER model (Kazakh names: patterns).",
    )


class SplitConfig(ConfigSection):

    validation: float = Field(default=0.1, description="Share of patients held out for validation.")
    test: float = Field(default=0.1, description="Share of patients held out for the final test.")
    seed: int = Field(
        default=42, ge=0, le=MAX_SEED, description="Seed of the patient shuffle; same seed, same split."
    )

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


class QualityConfig(ConfigSection):

    min_chars: int = Field(default=20, ge=0, description="Reject examples whose answer is shorter than this.")
    max_tokens: int | None = Field(
        default=1024,
        ge=1,
        le=MAX_TOKENS,
        description="Reject examples longer than this in tokens; needs a token counter, None disables.",
    )
    dedup: bool = Field(default=True, description="Drop exact duplicates of a message list.")
    near_dup_threshold: float | None = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Drop examples whose estimated Jaccard similarity (MinHash) to a kept one reaches this; "
        "None disables.",
    )
    lang_check: Literal["off", "flag", "drop"] = Field(
        default="flag",
        description="Language identification (lingua) of each record's text: mark (meta.lang_detected) or "
        "reject records whose text is in another language than declared.",
    )


def _bundled_sources() -> list[SourceConfig]:
    return [SourceConfig(lang=lang) for lang in LANGS]  # type: ignore[arg-type]


class PromptOverrides(ConfigSection):

    system: dict[Lang, str] = Field(default_factory=dict, description="System prompt per language.")
    tasks: dict[TaskName, dict[Lang, str]] = Field(
        default_factory=dict, description="User instruction per task and language."
    )


class DataConfig(ConfigSection):

    sources: list[SourceConfig] = Field(
        default_factory=_bundled_sources, description="Record files to read; default: the bundled samples."
    )
    deid: DeidConfig = Field(default_factory=DeidConfig, description="De-identification settings.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/validation/test split.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Example filters.")
    prompts: PromptOverrides = Field(
        default_factory=PromptOverrides, description="Replace the built-in prompts (ru, kk, zh, en)."
    )
    workers: int = Field(
        default=1, ge=1, le=MAX_WORKERS, description="Processes that de-identify and build examples; 2+ uses more "
        "cores."
    )
    patient_salt: str = Field(
        default="medtune", description="Salt for hashing patient ids into group keys; keep it private."
    )
