"""The OpenAI-compatible server: `ChatModel` (the one engine), request batching, the FastAPI app and its metrics."""

from finetune.serve._app import BackgroundServer, create_app, models_for_recipe, serve
from finetune.serve._engine import ChatModel

__all__ = ["BackgroundServer", "ChatModel", "create_app", "models_for_recipe", "serve"]
