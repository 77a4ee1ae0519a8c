"""The models an evaluation asks, and the identity that keys their cached answers.

Without an endpoint they are the recipe's base and tuned models on medtune's own server (started on loopback
only when an answer is not cached), identified by their weight files. At an endpoint each named model is
identified by what the server says of it: a published weights fingerprint, a cache tag, or a probe answer.
Cache keys are built from these identities, so the strings made here must stay exactly as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from finetune.eval._client import MODEL_ROLES, APIClient, ServedModel
from finetune.recipe import Recipe


def fingerprint(*paths: str | Path) -> str:
    """Identity of local weights: file names, sizes and modification times (a retrained model gets a new one).

    A path that is not a local directory (a hub id) identifies itself.
    """
    digest = hashlib.sha256()
    for path in paths:
        root = Path(path)
        digest.update(str(path).encode())
        if not root.is_dir():
            continue
        for file in sorted(root.iterdir()):
            if file.is_file() and file.suffix in (".safetensors", ".json", ".model", ".bin", ".gguf"):
                stat = file.stat()
                digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def endpoint_identity(client: APIClient, model: str, cache_tag: str | None = None) -> tuple[str, str]:
    """What the cache keys `model`'s answers by at this endpoint, and how the weights were identified.

    The server is always asked first (so a refused key or a stopped server fails the run): the weights
    fingerprint that medtune's server publishes in /v1/models identifies the weights exactly; elsewhere
    `cache_tag` names them, and failing that a short probe answer does. Endpoint and name are in every key.
    """
    entry = client.require_model(model)
    published = entry.get("fingerprint") if entry else None
    parts, how = [f"{client.base_url}#{model}"], []
    if isinstance(published, str) and published:
        parts.append(f"weights:{published}")
        how.append("weights fingerprint")
    if cache_tag:
        parts.append(f"tag:{cache_tag}")
        how.append(f"cache tag {cache_tag!r}")
    if not how:
        parts.append(f"probe:{client.probe(model)}")
        how.append("probe answer")
    return "#".join(parts), " and ".join(how)


def local_identities(recipe: Recipe) -> dict[str, str]:
    """base and tuned of a recipe, named by the fingerprint of their files (and the base's revision)."""
    base = fingerprint(recipe.model.base) + (f"@{recipe.model.revision}" if recipe.model.revision else "")
    if recipe.eval.tuned == "merged":
        return {"base": f"base:{base}", "tuned": f"merged:{fingerprint(recipe.merged_dir)}"}
    return {"base": f"base:{base}", "tuned": f"adapter:{base}:{fingerprint(recipe.adapter_dir)}"}


class LocalServer:
    """medtune's own server for the recipe's base and tuned models, started on loopback when first needed."""

    def __init__(self, recipe: Recipe, stack: ExitStack) -> None:
        self.recipe, self.stack = recipe, stack
        self.base_url: str | None = None
        self._client: APIClient | None = None

    def client(self) -> APIClient:
        if self._client is None:
            from finetune.serve import BackgroundServer, create_app, models_for_recipe

            app = create_app(models_for_recipe(self.recipe), default_max_tokens=self.recipe.eval.max_new_tokens)
            server = self.stack.enter_context(BackgroundServer(app))
            self.base_url = server.base_url
            self._client = APIClient(server.base_url)
        return self._client


def identify(client: APIClient, name: str, cache_tag: str | None, cached: bool) -> tuple[str, str]:
    """The cache identity of `name` at `client` and how it was found; the server is asked either way."""
    if cached:
        return endpoint_identity(client, name, cache_tag)
    client.require_model(name)
    return f"{client.base_url}#{name}", "not cached"


def endpoint_models(
    endpoint: str, api_key: str | None, model: str | None, base_model: str | None, base_endpoint: str | None,
    cache_tag: str | None, cached: bool,
) -> tuple[dict[str, ServedModel], dict[str, str]]:
    """The models at the endpoint(s), each identified by what it serves before any cached answer is used."""
    tuned_client = APIClient(endpoint, api_key)
    named = {"tuned": (model or "tuned", tuned_client)}
    if base_model:
        base_client = APIClient(base_endpoint, api_key) if base_endpoint else tuned_client
        named = {"base": (base_model, base_client), **named}
    served: dict[str, ServedModel] = {}
    keyed_by: dict[str, str] = {}
    for role, (name, client) in named.items():
        identity, keyed_by[role] = identify(client, name, cache_tag, cached)
        served[role] = ServedModel(role, name, identity, lambda client=client: client)
    return served, keyed_by


def local_models(
    recipe: Recipe, local: LocalServer, cache_tag: str | None,
) -> tuple[dict[str, ServedModel], dict[str, str]]:
    """The recipe's base and tuned models, identified by their files: a cached run starts no server."""
    identities = local_identities(recipe)
    suffix = f"#tag:{cache_tag}" if cache_tag else ""
    served = {role: ServedModel(role, role, identities[role] + suffix, local.client) for role in MODEL_ROLES}
    how = "local weight files" + (f" and cache tag {cache_tag!r}" if cache_tag else "")
    return served, dict.fromkeys(MODEL_ROLES, how)


@dataclass
class Served:
    """The models to ask, how each was identified, how the report describes them, and where they were asked."""

    models: dict[str, ServedModel]
    keyed_by: dict[str, str]
    described: dict[str, str]
    where: Callable[[], str]  # called once asking is done: a local server may never have been started


def serve_models(
    recipe: Recipe, stack: ExitStack, endpoint: str | None, api_key: str | None, model: str | None,
    base_model: str | None, base_endpoint: str | None, cache_tag: str | None, cached: bool,
) -> Served:
    """The recipe's own models behind a local server that `stack` stops, or the named models at `endpoint`."""
    if endpoint is None:
        local = LocalServer(recipe, stack)
        served, keyed_by = local_models(recipe, local, cache_tag)
        tuned_source = recipe.merged_dir if recipe.eval.tuned == "merged" else recipe.adapter_dir
        described = {"base": recipe.model.base, "tuned": str(tuned_source)}
        return Served(served, keyed_by, described,
                      lambda: local.base_url or "http://127.0.0.1 (not started: every answer came from the cache)")
    served, keyed_by = endpoint_models(endpoint, api_key, model, base_model, base_endpoint, cache_tag, cached)
    described = {role: f"{s.name} @ {s.client.base_url}" for role, s in served.items()}
    where = served["tuned"].client.base_url
    return Served(served, keyed_by, described, lambda: where)
