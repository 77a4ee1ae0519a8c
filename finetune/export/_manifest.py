"""The export manifest: the sha256 and size of every file in a bundle, so a copy can be checked byte for byte.

A bundle travels (to a vLLM host, an Ollama workstation, a hospital's model registry); `verify_bundle` tells
whoever receives it whether anything is missing, changed or added since export.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from data_prep.files import sha256_file

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
REQUIRED_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "NOTICE", "README.md")


class BundleError(ValueError):
    """A directory that is not a complete, unchanged medtune export."""


def _bundle_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST_NAME)


def write_manifest(root: Path, extra: dict[str, Any] | None = None) -> Path:
    """Hash every file under `root` (the manifest itself excepted) into `root/manifest.json`."""
    files = {
        path.relative_to(root).as_posix(): {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in _bundle_files(root)
    }
    manifest = {"format": MANIFEST_FORMAT, **(extra or {}), "files": files}
    target = root / MANIFEST_NAME
    target.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def _outside(name: str, path: Path, inside: Path) -> bool:
    """Whether a manifest entry names a file outside the bundle: checking it would read (and vouch for) a file
    the bundle does not hold, such as `../../../etc/hostname` or `/etc/hostname`."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive or ".." in pure.parts:
        return True
    return not path.resolve().is_relative_to(inside)


def verify_bundle(root: str | Path) -> list[str]:
    """Every problem found in the bundle at `root`, one line each; an empty list means it is intact."""
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        return [f"{root}: no such directory"]
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing (not a medtune export, or exported before manifests existed)"]
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed: dict[str, dict[str, Any]] = manifest["files"]
        if not isinstance(listed, dict):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return [f"{manifest_path}: not a valid manifest (expected JSON with a 'files' mapping)"]
    problems = []
    for name in REQUIRED_FILES:
        if name not in listed:
            problems.append(f"{name}: required file is not in the manifest")
    inside = root.resolve()
    for name, entry in listed.items():
        path = root / name
        if _outside(name, path, inside):
            problems.append(f"{name}: outside the bundle (an absolute path, '..' or a link leading out); a manifest "
                            "lists only files inside its bundle, so this one was altered: re-export or ask the sender")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{name}: manifest entry is not a mapping with sha256 and bytes")
            continue
        if not path.is_file():
            problems.append(f"{name}: listed in the manifest but missing")
            continue
        if path.stat().st_size != entry.get("bytes"):
            problems.append(f"{name}: size {path.stat().st_size} bytes, manifest says {entry.get('bytes')}")
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest (the file was changed)")
    for path in _bundle_files(root):
        name = path.relative_to(root).as_posix()
        if name not in listed:
            problems.append(f"{name}: not in the manifest (added after export)")
    index = root / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (json.JSONDecodeError, KeyError, AttributeError):
            problems.append("model.safetensors.index.json: not a valid safetensors index")
        else:
            problems += [f"{shard}: named by model.safetensors.index.json but missing"
                         for shard in sorted(shards) if not (root / shard).is_file()]
    elif not (root / "model.safetensors").is_file():
        problems.append("model.safetensors: no weights (neither a single file nor a sharded index)")
    return problems
