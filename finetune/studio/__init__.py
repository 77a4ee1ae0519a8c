"""medtune studio: a local web page to review what de-identification does to a source, run the recipe's stages
and follow them, read the before/after report and compare base and tuned answers. Loopback by default; a token
guards any other host; everything it writes stays under the recipe's output directory (`studio/`)."""

from finetune.studio._app import create_app, serve_studio
from finetune.studio._guard import TOKEN_ENV, PathRefused, inside, is_loopback, recipe_roots, required_token
from finetune.studio._state import Studio

__all__ = [
    "TOKEN_ENV",
    "PathRefused",
    "Studio",
    "create_app",
    "inside",
    "is_loopback",
    "recipe_roots",
    "required_token",
    "serve_studio",
]
