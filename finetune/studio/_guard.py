"""What keeps the studio's data on the machine: loopback unless a token guards it, and path inputs held inside
the directories the recipe names."""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

from finetune.recipe import Recipe

TOKEN_ENV = "MEDTUNE_STUDIO_TOKEN"
TOKEN_COOKIE = "medtune_studio_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class PathRefused(ValueError):
    """A path input that lies outside the directories the recipe names (or names nothing usable)."""


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the studio reachable from this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def required_token(host: str, token_env: str = TOKEN_ENV) -> str | None:
    """The token every request must carry: None on loopback; elsewhere the value of `token_env`, which must be set
    (a studio reachable from the network without one would show patient notes to anyone who finds the port)."""
    if is_loopback(host):
        return None
    token = os.environ.get(token_env, "")
    if len(token) < 16:
        raise ValueError(
            f"--host {host} is not loopback: set {token_env} to a secret of at least 16 characters; every request "
            "must then carry it (Authorization: Bearer …, or the login page's cookie)"
        )
    return token


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def host_header_allowed(host_header: str | None) -> bool:
    """On loopback, a request whose Host is not a loopback name came through another name that resolves here
    (DNS rebinding): a web page elsewhere must not read the studio through the user's browser."""
    if not host_header:
        return False
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    return is_loopback(name)


def recipe_roots(recipe: Recipe) -> list[Path]:
    """The directories a path input may point into: the run's output directory and each data source's folder."""
    roots = [recipe.root.resolve()]
    for source in recipe.data.sources:
        if source.path is not None:
            path = Path(source.path).expanduser().resolve()
            roots.append(path if path.is_dir() else path.parent)
    return list(dict.fromkeys(roots))


def inside(path: str | Path, roots: list[Path], base: Path | None = None) -> Path:
    """`path` resolved (links followed, `..` applied, relative to `base` or the working directory) when it lies
    inside one of `roots`; otherwise PathRefused naming the roots. Absolute paths are held to the same roots."""
    text = str(path)
    if not text.strip() or "\x00" in text:
        raise PathRefused("empty path")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = (base or Path.cwd()) / candidate
    resolved = candidate.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise PathRefused(
            f"{text}: outside the directories this recipe names ({', '.join(str(r) for r in roots)})"
        )
    return resolved


def upload_name(filename: str) -> str:
    """A file name for an upload, with no folder part: the browser's name can hold `../` or be absolute."""
    name = Path(filename.replace("\\", "/")).name
    if name in ("", ".", "..") or name.startswith(".") or "\x00" in name or len(name) > 200:
        raise PathRefused(f"{filename!r}: not a usable file name")
    return name
