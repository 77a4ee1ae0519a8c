"""The models a recipe serves: `base`, `tuned` and any further adapters or merged checkpoints, checked first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from finetune.errors import StageInputError
from finetune.recipe import Recipe
from finetune.serve._engine import ChatModel
from finetune.serve._weights import AdapterError, check_adapter


def _with_tuned(
    recipe: Recipe, adapters: dict[str, str | Path], merged: dict[str, str | Path]
) -> tuple[dict[str, str | Path], dict[str, str | Path]]:
    """The extra adapters and merged checkpoints with the recipe's own `tuned` model first in its kind."""
    if recipe.eval.tuned == "merged":
        if not (recipe.merged_dir / "config.json").is_file():
            raise StageInputError(f"{recipe.merged_dir} holds no merged model: run `medtune export` first")
        return adapters, {"tuned": recipe.merged_dir, **merged}
    if not (recipe.adapter_dir / "adapter_config.json").is_file():
        raise StageInputError(f"{recipe.adapter_dir} holds no adapter: run `medtune train` first")
    return {"tuned": recipe.adapter_dir, **adapters}, merged


def models_for_recipe(
    recipe: Recipe,
    adapters: Mapping[str, str | Path] | None = None,
    merged: Mapping[str, str | Path] | None = None,
) -> dict[str, ChatModel]:
    """`base` and `tuned` as the recipe defines them, plus any further adapters and merged checkpoints.

    Adapters share one copy of the base weights; merged checkpoints are full models of their own.
    """
    adapters, merged = _with_tuned(recipe, dict(adapters or {}), dict(merged or {}))
    clash = {"base"} & (set(adapters) | set(merged)) | set(adapters) & set(merged)
    if clash:
        raise ValueError(f"model name(s) {', '.join(sorted(clash))} given twice: every served model needs its own")
    for name, path in adapters.items():
        try:
            check_adapter(path)  # before any weights load: a broken adapter fails in a second, naming its file
        except AdapterError as exc:
            raise AdapterError(f"adapter {name!r}: {exc}") from None
    for name, path in merged.items():
        if not (Path(path) / "config.json").is_file():
            raise StageInputError(f"merged model {name!r}: {path} holds no config.json")
    if adapters:
        models = ChatModel.load_shared(recipe.model.base, adapters, base_name="base")
    else:
        models = {"base": ChatModel.load(recipe.model.base, name="base")}
    for name, path in merged.items():
        models[name] = ChatModel.load(path, name=name)
    order = ["base", "tuned"]
    return dict(sorted(models.items(), key=lambda item: (order.index(item[0]) if item[0] in order else 2)))
