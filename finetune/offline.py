"""Nothing medtune runs reaches the network on its own: bitsandbytes' hub kernel lookup is kept to the local cache.

On CPUs with AVX512-BF16, importing bitsandbytes (which `import peft` does) asks the Hugging Face hub for a CPU
kernel through the `kernels` package, on every start. `install` (run when `finetune` is imported) makes that import
run with the hub switched to its offline mode, which makes `kernels` look in the local cache only; the switch is put
back right after, so model weights a recipe names still download as usual. Nothing is imported ahead of need.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

BITSANDBYTES = "bitsandbytes"
# Who says the cached lookup missed: bitsandbytes' kernel loader, and `kernels` skipping its publisher check offline.
QUIET_LOGGERS = ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub")


@contextlib.contextmanager
def hub_kernels_from_cache_only() -> Iterator[None]:
    """The hub in offline mode (local cache only) and the kernel lookup's logs quiet, then all put back."""
    from huggingface_hub import constants

    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    was_offline, were_disabled = constants.HF_HUB_OFFLINE, [log.disabled for log in loggers]
    constants.HF_HUB_OFFLINE = True
    for log in loggers:
        log.disabled = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = was_offline
        for log, disabled in zip(loggers, were_disabled, strict=True):
            log.disabled = disabled


class _OfflineLoader(importlib.abc.Loader):
    """bitsandbytes' own loader, run inside `hub_kernels_from_cache_only`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with hub_kernels_from_cache_only():
            self.loader.exec_module(module)


class _OfflineImportFinder(importlib.abc.MetaPathFinder):
    """Finds bitsandbytes where Python would, and hands it `_OfflineLoader`; steps aside after the first import."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != BITSANDBYTES:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _OfflineLoader(spec.loader)
        return spec


def install() -> None:
    """Route the first `import bitsandbytes`, wherever it comes from, through `hub_kernels_from_cache_only`."""
    if BITSANDBYTES in sys.modules or any(isinstance(f, _OfflineImportFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _OfflineImportFinder())
