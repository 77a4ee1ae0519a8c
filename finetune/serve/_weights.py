"""The weights behind a served model: adapter directories checked before loading, and their fingerprints.

A broken adapter directory is refused before any weights load (`check_adapter`), naming the file at fault and
the fix; an adapter that does not fit its base is refused when attached (`attach_adapter`). Every served model
carries a fingerprint of the weights that answer (`weights_fingerprint`, `combined_fingerprint`), so clients
can tell when the model behind a name changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from peft import PeftModel
from safetensors import SafetensorError, safe_open
from transformers import PreTrainedModel

from data_prep.files import sha256_file

ADAPTER_FIX = ("give the directory `medtune train` wrote, which holds adapter_config.json and "
               "adapter_model.safetensors (copy it again, or train again, if they are damaged)")


class AdapterError(ValueError):
    """An adapter directory that cannot be loaded; the message names the file at fault and what to do."""


def check_adapter(path: str | Path) -> list[Path]:
    """Refuse a broken adapter directory before any weights load; returns its weights and config files.

    PEFT would otherwise fail deep inside loading, with a `KeyError` or a `SafetensorError` that names no file.
    """
    root = Path(path)
    if not root.is_dir():
        raise AdapterError(f"adapter directory {root} does not exist: {ADAPTER_FIX}")
    config = root / "adapter_config.json"
    if not config.is_file():
        raise AdapterError(f"{config} is missing: {ADAPTER_FIX}")
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{config} is not valid JSON ({exc}): {ADAPTER_FIX}") from None
    if not isinstance(settings, dict) or "peft_type" not in settings:
        raise AdapterError(f"{config} names no peft_type, so it is no PEFT adapter config: {ADAPTER_FIX}")
    weights = root / "adapter_model.safetensors"
    if not weights.is_file():
        legacy = root / "adapter_model.bin"
        if legacy.is_file():
            return [legacy, config]
        raise AdapterError(f"{weights} is missing: {ADAPTER_FIX}")
    try:
        with safe_open(str(weights), framework="pt") as tensors:
            tensors.keys()
    except (SafetensorError, OSError) as exc:
        raise AdapterError(f"{weights} is unreadable or truncated ({exc}): {ADAPTER_FIX}") from None
    return [weights, config]


def attach_adapter(model: PreTrainedModel | PeftModel, adapter: str | Path, name: str = "default") -> PeftModel:
    """`model` with the adapter at `adapter` loaded as `name`; a failure names the adapter directory."""
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(adapter), adapter_name=name)
            return model
        return PeftModel.from_pretrained(model, str(adapter), adapter_name=name)
    except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as exc:
        which = "the adapter" if name == "default" else f"adapter {name!r}:"
        raise AdapterError(f"{which} {adapter} does not fit this base model ({type(exc).__name__}: {exc}); was it "
                           f"trained on this base? Otherwise {ADAPTER_FIX}") from exc


def weights_fingerprint(paths: Iterable[str | Path]) -> str:
    """sha256 over the names and contents of weight files: it changes exactly when the weights do.

    Only file names (not directories) enter it, so a copied adapter keeps its fingerprint. Files are hashed
    in parallel (hashlib releases the GIL): a base model's shards run to many gigabytes.
    """
    files = sorted((Path(p) for p in paths), key=lambda f: f.name)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(files)))) as pool:
        digests = list(pool.map(partial(sha256_file, chunk=8 << 20), files))
    total = hashlib.sha256()
    for file, digest in zip(files, digests, strict=True):
        total.update(f"{file.name}\0{digest}\n".encode())
    return total.hexdigest()


def combined_fingerprint(*fingerprints: str) -> str:
    """The fingerprint of a base with an adapter on top: it changes when either does."""
    return hashlib.sha256("+".join(fingerprints).encode()).hexdigest()


def model_weight_files(path: str | Path) -> list[Path]:
    """The weight files of a full model: a local directory's, or the hub cache's copy of a hub id."""
    root = Path(path)
    if not root.is_dir():
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(str(path), local_files_only=True))
    files = sorted(root.glob("*.safetensors")) or sorted(root.glob("*.bin"))
    if not files:
        raise ValueError(f"{root} holds no weight files (*.safetensors or *.bin)")
    return files
