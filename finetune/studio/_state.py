"""What one studio holds: the recipe it was opened on, the directories path inputs may reach, the runs, the
reviewed set and the comparison server. Everything it writes lies under the recipe's output directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finetune.recipe import Recipe, load_recipe
from finetune.studio._compare import Comparer
from finetune.studio._guard import PathRefused, inside, recipe_roots, upload_name
from finetune.studio._review import Chosen, file_source, recipe_source
from finetune.studio._runs import RunStore

STUDIO_DIR = "studio"


@dataclass
class Studio:
    recipe: Recipe
    recipe_path: str | None = None
    overrides: list[str] = field(default_factory=list)
    profile: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        self.roots = recipe_roots(self.recipe)
        self.runs = RunStore(self.directory / "runs", self.recipe_path, self.overrides, self.profile)
        self.comparer = Comparer(self.recipe)

    @classmethod
    def open(cls, recipe_path: str | None, overrides: list[str], profile: str | None, token: str | None) -> Studio:
        return cls(load_recipe(recipe_path, overrides, profile), recipe_path, overrides, profile, token)

    @property
    def directory(self) -> Path:
        return self.recipe.root.resolve() / STUDIO_DIR

    @property
    def uploads(self) -> Path:
        return self.directory / "uploads"

    @property
    def reviewed(self) -> Path:
        return self.directory / "reviewed"

    def source(self, key: str, fmt: str = "auto", lang: str = "auto") -> Chosen:
        """`recipe:N` (the recipe's Nth source) or `file:PATH` (a file inside the recipe's directories)."""
        kind, _, value = key.partition(":")
        if kind == "recipe":
            if not value.isdigit() or int(value) >= len(self.recipe.data.sources):
                raise PathRefused(f"{key}: the recipe has {len(self.recipe.data.sources)} source(s)")
            return recipe_source(self.recipe.data, int(value))
        if kind == "file":
            path = inside(value, self.roots)
            if not path.exists():
                raise PathRefused(f"{value}: no such file or folder")
            return file_source(path, fmt, lang)
        raise PathRefused(f"{key!r}: a source is recipe:N or file:PATH")

    def save_upload(self, filename: str, body: bytes) -> Path:
        """Keep an uploaded export under the run's directory, never where its name points."""
        name = upload_name(filename)
        self.uploads.mkdir(parents=True, exist_ok=True)
        target = inside(self.uploads / name, [self.uploads.resolve()])
        tmp = target.with_name(f".{name}.part")
        tmp.write_bytes(body)
        tmp.replace(target)
        return target

    def source_choices(self) -> list[tuple[str, str]]:
        """(key, label) of every source the Data page offers: the recipe's, then uploads."""
        choices = []
        for index, source in enumerate(self.recipe.data.sources):
            label = source.path or f"bundled {source.lang} sample"
            choices.append((f"recipe:{index}", f"recipe: {label} ({source.format}, {source.lang})"))
        if self.uploads.is_dir():
            for path in sorted(self.uploads.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    choices.append((f"file:{path}", f"upload: {path.name}"))
        return choices
