"""The studio's FastAPI app: request guards (token, Host, Origin), route and status logging without text, the
pages and their JSON routes, and `serve_studio`, which refuses a non-loopback host without a token."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from finetune.studio._api import register_api
from finetune.studio._guard import TOKEN_COOKIE, host_header_allowed, required_token, token_matches
from finetune.studio._pages import register_pages
from finetune.studio._state import Studio

log = logging.getLogger("finetune.studio")
_OPEN_PATHS = ("/login",)  # with a token, everything else needs it, the page's styles and scripts too


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("finetune.studio").joinpath(name)))


def _given_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def _guard(studio: Studio) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        path = request.url.path
        if studio.token is None and not host_header_allowed(request.headers.get("host")):
            response: Response = PlainTextResponse("this studio answers on loopback names only", status_code=421)
        elif request.method not in ("GET", "HEAD") and not _same_origin(request):
            response = PlainTextResponse("cross-origin request refused", status_code=403)
        elif (studio.token is not None and path not in _OPEN_PATHS
              and not token_matches(studio.token, _given_token(request))):
            response = (RedirectResponse("/login", status_code=303) if request.method == "GET"
                        and not path.startswith("/api/") else JSONResponse({"error": "token required"}, 401))
        else:
            response = await call_next(request)
        # route and status only: query strings and bodies can hold paths and patient text
        route = request.scope.get("route")
        log.info("%s %s %d %.0f ms", request.method, getattr(route, "path", "-"), response.status_code,
                 1000 * (time.perf_counter() - started))
        return response

    return guard


def _same_origin(request: Request) -> bool:
    """A page elsewhere may make the browser post here; only the studio's own pages may change anything."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def create_app(studio: Studio) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        studio.comparer.close()

    app = FastAPI(title="medtune studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    templates = Jinja2Templates(directory=str(_package_dir("templates")))
    app.middleware("http")(_guard(studio))
    app.mount("/static", StaticFiles(directory=str(_package_dir("static"))), name="static")
    register_pages(app, studio, templates)
    register_api(app, studio)
    return app


def serve_studio(studio_args: dict, host: str, port: int, token_env: str) -> None:
    """Open the studio on `host:port` (loopback unless a token from `token_env` guards every request)."""
    token = required_token(host, token_env)
    studio = Studio.open(studio_args["recipe"], studio_args["overrides"], studio_args["profile"], token)
    app = create_app(studio)
    print(f"medtune studio on http://{host if ':' not in host else f'[{host}]'}:{port}/ "
          f"(runs and reviews under {studio.directory})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
