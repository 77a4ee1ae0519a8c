"""The OpenAI-compatible server: `ChatModel` (the one engine behind every served model), request batching,
the FastAPI app (chat completions, scoring, model list, health, metrics) and the models a recipe serves."""

from finetune.serve._app import BackgroundServer, create_app, serve
from finetune.serve._engine import ChatModel
from finetune.serve._loading import models_for_recipe

__all__ = ["BackgroundServer", "ChatModel", "create_app", "models_for_recipe", "serve"]
