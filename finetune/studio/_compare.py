"""The Compare page's backend: the recipe's base and tuned models behind medtune's own OpenAI-compatible server
(started on loopback the first time it is needed, with a key of its own), asked through the evaluation's client,
so the answers side by side come the way `medtune eval` gets them."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from finetune.eval import APIClient
from finetune.recipe import Recipe


def weights_stamp(recipe: Recipe) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and times of the files that answer as base and tuned: a run that trains or exports again
    changes it, and the next question then reaches the new weights, not the ones loaded before."""
    tuned = recipe.merged_dir if recipe.eval.tuned == "merged" else recipe.adapter_dir
    files = []
    for folder in (Path(recipe.model.base), tuned):
        if folder.is_dir():
            files.extend(p for p in folder.iterdir() if p.is_file())
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))


class Comparer:
    """Starts the server when first asked and keeps it while the weights stay the same; `close` stops it."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self._server: Any = None
        self._client: APIClient | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._lock = threading.Lock()

    def client(self) -> APIClient:
        stamp = weights_stamp(self.recipe)
        if self._client is not None and stamp != self._stamp:
            self.close()  # retrained or re-exported since the server started
        with self._lock:
            if self._client is None:
                from finetune.serve import BackgroundServer, create_app, models_for_recipe

                key = secrets.token_urlsafe(24)  # the loopback server answers the studio only
                app = create_app(models_for_recipe(self.recipe), api_key=key)
                server = BackgroundServer(app).__enter__()
                self._server, self._client = server, APIClient(server.base_url, api_key=key, timeout=300)
                self._stamp = stamp
            return self._client

    def ask(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        """One user turn to `base` and `tuned` at once; each answer with why it stopped."""
        if not prompt.strip():
            raise ValueError("the prompt is empty")
        client = self.client()
        messages = [{"role": "user", "content": prompt}]
        with ThreadPoolExecutor(2) as pool:
            futures = {role: pool.submit(client.chat, role, messages, max_tokens) for role in ("base", "tuned")}
            answers = {role: future.result() for role, future in futures.items()}
        return {"endpoint": client.base_url, "answers": answers}

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.__exit__(None, None, None)
                self._server = self._client = None
