"""The recipe: one pydantic schema that every stage reads, the single source of truth for a run.

A recipe is YAML. Unknown keys fail with their dotted path and the closest valid key, wrong types name the
field and the type expected, and `section.key=value` overrides from the command line are applied before
validation, so the resolved recipe written next to each output is exactly what ran.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from data_prep.config import MAX_SEED, MAX_TOKENS, ConfigSection, DataConfig, path_overlap
from finetune.recipe._eval import EvalConfig
from finetune.recipe._train import DPO_TASKS, GRPO_TASKS, LoraConfig, PretrainConfig, TrainConfig

RESOLVED_RECIPE_NAME = "recipe.resolved.yaml"
FLOAT16_NAMES = ("float16", "fp16", "half")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message says where and how to fix it."""


def refuse_float16(dtype_name: object) -> None:
    """The one float16 refusal, for the recipe and for whoever picks a compute dtype: Gemma 3's activations overflow
    fp16, so a run in it ends in NaN losses."""
    if isinstance(dtype_name, str) and dtype_name.lower() in FLOAT16_NAMES:
        raise ValueError(
            "float16 is refused: Gemma 3 activations overflow fp16 and the loss turns NaN; use bfloat16 on GPU "
            "(Ampere or newer) or auto (bfloat16 on GPU, float32 on CPU)"
        )


class TinyModelConfig(ConfigSection):
    """How to build the local tiny base when `model.base` does not exist yet (demo and tests)."""

    variant: Literal["causal", "image_text"] = Field(
        "causal", description="Gemma3ForCausalLM (like medgemma-27b-text-it) or Gemma3ForConditionalGeneration "
        "with a tiny vision tower (like medgemma-4b-it)."
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed for weights and tokenizer: the same seed builds the same model."
    )
    vocab_size: int = Field(
        4000, ge=300, le=262_144, description="Upper bound for the trained SentencePiece vocabulary."
    )
    hidden_size: int = Field(128, ge=32, le=4096)
    initializer_range: float = Field(
        0.1, gt=0, le=1.0, description="Std of the random weights; a larger one gives the frozen (tied) embeddings "
        "enough norm for LoRA to move the logits, as trained embeddings have."
    )
    num_layers: int = Field(2, ge=1, le=64)
    pretrain_steps: int = Field(
        0, ge=0, le=100_000, description="Continued pretraining (the completion objective) on the bundled clinic "
        "text after the random start, merged into the weights, so the base writes ru, kk and zh; 0: random weights."
    )
    pretrain_learning_rate: float = Field(3e-3, gt=0, le=1.0)
    pretrain_rank: int = Field(64, ge=1, le=1024, description="LoRA rank of that pretraining (merged afterwards).")


class ModelConfig(ConfigSection):
    """The base model and how it is loaded for training."""

    base: str = Field(description="Hub id (e.g. google/medgemma-4b-it) or a local directory.")
    tiny: TinyModelConfig | None = Field(
        None, description="Build a tiny Gemma 3 model at `base` when that directory is missing."
    )
    load_in_4bit: bool = Field(True, description="QLoRA: keep base weights in 4-bit through bitsandbytes.")
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = Field(True, description="Quantize the quantization constants too (saves ~0.4 bit/param).")
    compute_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="auto: bfloat16 on GPU, float32 on CPU. float16 is refused: Gemma 3 overflows in it."
    )
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = Field(
        "sdpa", description="sdpa gives eager's losses and gradients on Gemma 3's packed rows (tested) without "
        "materialising the attention scores: less memory, faster; eager is what Google's notebooks use."
    )
    revision: str | None = Field(None, description="Pin a hub revision for reproducible runs.")

    @field_validator("compute_dtype", mode="before")
    @classmethod
    def _no_float16(cls, value: Any) -> Any:
        refuse_float16(value)
        return value


class ExportConfig(ConfigSection):
    """Merging the adapter into full-precision base weights, and the formats written next to the checkpoint."""

    enabled: bool = True
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="Dtype of the merged weights; auto keeps the base checkpoint's own dtype."
    )
    max_shard_size: str = Field("2GB", description="Safetensors shard size of the merged checkpoint, e.g. 5GB.")
    formats: list[Literal["lora", "gguf"]] = Field(
        default_factory=lambda: ["lora", "gguf"],
        description="Besides the merged Hugging Face checkpoint: lora (the adapter alone in vLLM's LoRA layout) "
        "and gguf (llama.cpp / Ollama, text model, with a Modelfile).",
    )
    gguf_type: Literal["f32", "f16", "bf16", "q8_0"] = Field(
        "bf16", description="GGUF weight type; bf16 keeps MedGemma's weights as they are, q8_0 halves the size."
    )
    merge_check_prompts: int = Field(
        4, ge=1, le=1000, description="Held-out conversations on which merged and base+adapter outputs are compared."
    )
    merge_check_new_tokens: int = Field(
        16, ge=1, le=4096, description="Greedy tokens generated per prompt for that check."
    )

    @field_validator("max_shard_size")
    @classmethod
    def _shard_size_is_a_size(cls, value: str) -> str:
        """The form transformers' save_pretrained reads, checked now rather than after training."""
        match = re.fullmatch(r"(\d+)(KB|MB|GB|KIB|MIB|GIB)", value.strip().upper())
        if match is None or int(match.group(1)) == 0:
            raise ValueError("expected a whole positive number and a unit, e.g. 500MB, 2GB or 5GiB")
        return value.strip()


class ServeConfig(ConfigSection):
    """The OpenAI-compatible HTTP server."""

    host: str = Field("127.0.0.1", description="Bind address; loopback unless you mean to expose it.")
    port: int = Field(8000, ge=0, le=65535)
    max_batch_size: int = Field(8, ge=1, le=1024, description="Concurrent requests for one model decoded in one batch.")
    batch_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="How long the first request of a batch waits for others to join it."
    )
    max_tokens_limit: int | None = Field(
        None, ge=1, le=MAX_TOKENS, description="Refuse requests asking for more new tokens than this (400); None: "
        "the context."
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=1024**3,
        description="Largest request body accepted; larger ones get HTTP 413 before anything is read into memory.",
    )
    log_text: bool = Field(
        False, description="Log prompts and completions (they hold patient text): only for debugging on test data."
    )


class Recipe(ConfigSection):
    """A whole run: data → adapter → merged model → evaluation report."""

    name: str
    output_dir: str = Field(description="Every stage writes under this directory (relative to the working dir).")
    seed: int = Field(42, ge=0, le=MAX_SEED)
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pretrain: PretrainConfig | None = Field(
        None, description="Continued pretraining on raw text, run before SFT; SFT starts from its result."
    )
    export: ExportConfig = Field(default_factory=ExportConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named sets of dotted overrides, e.g. GPU memory profiles (8gb: {train.max_length: 2048}); "
        "chosen with --profile NAME.",
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_slug(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\ "):
            raise ValueError("use a short name without spaces or slashes, e.g. medgemma-4b-ru")
        return value

    @model_validator(mode="after")
    def _adapter_eval_needs_no_export(self) -> Recipe:
        if self.eval.tuned == "merged" and not self.export.enabled:
            raise ValueError("eval.tuned is 'merged' but export.enabled is false: set eval.tuned: adapter")
        return self

    @model_validator(mode="after")
    def _objective_fits_the_data(self) -> Recipe:
        """Raw text rows train only the completion objective, and chat examples only SFT."""
        sections = [("data", self.data, self.train.objective)]
        if self.pretrain is not None:
            sections.append(("pretrain.data", self.pretrain.data, "completion"))
        for name, data, objective in sections:
            for index, source in enumerate(data.sources):
                tasks = source.tasks or []
                if objective == "completion" and any(task != "text" for task in tasks):
                    raise ValueError(
                        f"{name}.sources[{index}].tasks: {objective} trains on raw text; set tasks: [text]"
                    )
                if objective == "sft" and "text" in tasks:
                    raise ValueError(
                        f"{name}.sources[{index}].tasks: text rows are for train.objective: completion (or the "
                        "pretrain section); SFT needs chat tasks"
                    )
        self._tasks_fit_grpo_and_dpo()
        if self.pretrain is not None and self.train.objective != "sft":
            raise ValueError("a pretrain section goes before SFT: set train.objective: sft")
        if self.pretrain is not None and self.train.start_from is not None:
            raise ValueError("train.start_from and a pretrain section both say where SFT starts: keep one")
        return self

    def _tasks_fit_grpo_and_dpo(self) -> None:
        """GRPO needs examples with a checkable reference, DPO preference pairs, and preference pairs need DPO."""
        objective = self.train.objective
        for index, source in enumerate(self.data.sources):
            tasks = source.tasks or []
            where = f"data.sources[{index}].tasks"
            if objective == "grpo" and (wrong := [t for t in tasks if t not in GRPO_TASKS]):
                raise ValueError(f"{where}: {', '.join(wrong)} have no checkable answer for GRPO's rewards; use "
                                 f"{', '.join(GRPO_TASKS)}")
            if objective == "dpo" and any(t not in DPO_TASKS for t in tasks):
                raise ValueError(f"{where}: DPO trains on preference pairs; set format: preference, tasks: "
                                 "[preference]")
            if objective != "dpo" and "preference" in tasks:
                raise ValueError(f"{where}: preference pairs are for train.objective: dpo")
        if objective == "grpo":
            completions = self.train.per_device_train_batch_size * self.train.gradient_accumulation_steps
            if completions % self.train.grpo.num_generations:
                raise ValueError(
                    f"train.per_device_train_batch_size × gradient_accumulation_steps ({completions}) counts GRPO's "
                    f"answers and must be a multiple of train.grpo.num_generations ({self.train.grpo.num_generations})"
                )

    @model_validator(mode="after")
    def _no_answer_is_cut_by_truncation(self) -> Recipe:
        if self.train.objective == "completion":  # text rows are cut into rows of max_length, nothing is lost
            return self
        limit = self.data.quality.max_tokens
        if limit is None or limit > self.train.max_length:
            raise ValueError(
                f"data.quality.max_tokens ({limit}) must be set and at most train.max_length "
                f"({self.train.max_length}): longer examples would be truncated mid-answer, training the model "
                "on answers that never end; lower data.quality.max_tokens or raise train.max_length"
            )
        return self

    @model_validator(mode="after")
    def _sources_stay_out_of_the_data_dir(self) -> Recipe:
        """prepare writes train.jsonl and the rest into output_dir/data: a source there would be overwritten."""
        for index, source in enumerate(self.data.sources):
            if source.path is not None and (overlap := path_overlap(source.path, self.data_dir)):
                raise ValueError(
                    f"data.sources[{index}].path: {overlap} (output_dir/data), where prepare writes its splits; "
                    "keep the export outside it, or set output_dir elsewhere"
                )
        return self

    # Where each stage writes. Stages read only what the previous stage wrote there.
    @property
    def root(self) -> Path:
        return Path(self.output_dir)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def adapter_dir(self) -> Path:
        return self.root / "adapter"

    @property
    def merged_dir(self) -> Path:
        return self.root / "merged"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def pretrain_dir(self) -> Path:
        return self.root / "pretrain"

    def pretrain_recipe(self) -> Recipe:
        """The pretraining stage as a recipe of its own, writing under output_dir/pretrain (None without one)."""
        if self.pretrain is None:
            raise RecipeError("this recipe has no pretrain section")
        return self.model_copy(update={
            "output_dir": str(self.pretrain_dir),
            "data": self.pretrain.data,
            "train": self.pretrain.train,
            "lora": self.pretrain.lora or self.lora,
            "pretrain": None,
        })

    @property
    def start_from(self) -> Path | None:
        """Where SFT starts: `train.start_from`, the pretrain stage's output, or None (fresh LoRA on model.base)."""
        if self.train.start_from is not None:
            return Path(self.train.start_from)
        if self.pretrain is None:
            return None
        return self.pretrain_dir / ("merged" if self.pretrain.hand_over == "merged" else "adapter")


def default_recipe_path() -> Path:
    """The embedded demo recipe, shipped with the package."""
    return Path(str(resources.files("recipes") / "tiny-demo.yaml"))


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides; values are parsed as YAML so numbers and lists keep their types."""
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r}: expected section.key=value, e.g. train.learning_rate=1e-4")
        dotted, value_text = item.split("=", 1)
        keys = dotted.strip().split(".")
        if not all(keys):
            raise RecipeError(f"override {item!r}: empty key in {dotted!r}")
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise RecipeError(f"override {item!r}: {key!r} is not a section")
            node = child
        node[keys[-1]] = yaml.safe_load(value_text)
    return raw


def validate_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a raw mapping; every problem is reported at once, one per line."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping with sections model, data, lora, train, …")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        lines = Recipe.describe_errors(exc, whole="recipe")
        raise RecipeError(f"{source}: invalid recipe\n  " + "\n  ".join(lines)) from None


def apply_profile(raw: dict[str, Any], name: str, source: str = "recipe") -> dict[str, Any]:
    """Apply the recipe's profile `name` (a mapping of dotted keys to values) to the raw recipe."""
    profiles = raw.get("profiles") or {}
    if name not in profiles:
        available = ", ".join(profiles) or "none"
        raise RecipeError(f"{source}: no profile {name!r}; profiles in this recipe: {available}")
    items = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
             for key, value in profiles[name].items()]
    return apply_overrides(raw, items)


def _check_profiles(raw: dict[str, Any], source: str) -> None:
    """Every profile must yield a valid recipe, so a typo in one fails now, not on the night it is used."""
    for name in raw.get("profiles") or {}:
        trial = apply_profile(copy.deepcopy(raw), name, source)
        validate_recipe(trial, source=f"{source} (profile {name})")


def load_recipe(
    path: str | Path | None = None, overrides: list[str] | None = None, profile: str | None = None
) -> Recipe:
    """Read a recipe file (the embedded demo when `path` is None), apply a profile, then dotted overrides."""
    recipe_path = Path(path) if path is not None else default_recipe_path()
    if not recipe_path.is_file():
        raise RecipeError(f"{recipe_path}: no such recipe file")
    try:
        raw = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{recipe_path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict):
        _check_profiles(raw, str(recipe_path))
        if profile is not None:
            raw = apply_profile(raw, profile, str(recipe_path))
    return validate_recipe(apply_overrides(raw, overrides or []), source=str(recipe_path))


def write_resolved(recipe: Recipe, directory: Path) -> Path:
    """Write the recipe exactly as it ran next to a stage's outputs."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / RESOLVED_RECIPE_NAME
    target.write_text(
        yaml.safe_dump(recipe.model_dump(mode="json"), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return target
