"""The JSON routes the pages' scripts call: upload a source, save a review, start and stop runs and read their
progress, ask base and tuned. Errors come back as `{"error": …}` with a 4xx status; none is logged with its text."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from finetune.recipe import RecipeError, load_recipe
from finetune.studio._guard import PathRefused
from finetune.studio._marks import read_set, save_review
from finetune.studio._progress import log_lines, progress
from finetune.studio._review import KINDS, find_record
from finetune.studio._runs import RunState
from finetune.studio._state import Studio

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_PROMPT_CHARS = 20_000


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ValueError("expected a JSON body (Content-Type: application/json)")
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def run_json(studio: Studio, state: RunState, with_progress: bool = False) -> dict[str, Any]:
    row = {"id": state.id, "verb": state.verb, "overrides": state.overrides, "options": state.options,
           "status": state.status, "returncode": state.returncode, "started": state.started, "ended": state.ended}
    if with_progress:
        log_path = studio.runs.log_path(state.id)
        adapter = studio.recipe.adapter_dir if state.verb in ("train", "run") and state.ended else None
        row.update(progress=progress(log_path, adapter), log=log_lines(log_path, 200))
        row["report"] = state.verb in ("eval", "run") and (studio.recipe.eval_dir / "report.html").is_file()
    return row


def register_api(app: FastAPI, studio: Studio) -> None:
    @app.post("/api/upload")
    async def upload(request: Request, name: str) -> JSONResponse:
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_UPLOAD_BYTES:
            return _error(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB", 413)
        body = await request.body()
        if len(body) > MAX_UPLOAD_BYTES:  # a body sent without its length
            return _error(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB", 413)
        try:
            path = await run_in_threadpool(studio.save_upload, name, body)
        except PathRefused as exc:
            return _error(str(exc))
        return JSONResponse({"source": f"file:{path}", "name": path.name, "bytes": len(body)})

    @app.post("/api/review")
    async def review(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            chosen = studio.source(str(body.get("source", "")), str(body.get("fmt", "auto")),
                                   str(body.get("lang", "auto")))
            record = await run_in_threadpool(find_record, chosen, studio.recipe.data, int(body.get("index", -1)))
            path = save_review(studio.reviewed, record, body.get("missed", []), body.get("wrong", []), KINDS)
        except (PathRefused, ValueError, KeyError, TypeError) as exc:
            return _error(str(exc).strip("'\""))
        saved = next(r for r in read_set(path) if r["id"] == record["id"])
        return JSONResponse({"saved": str(path), "id": record["id"], "spans": saved["spans"]})

    @app.get("/api/runs")
    def runs() -> JSONResponse:
        return JSONResponse({"runs": [run_json(studio, state) for state in studio.runs.list()]})

    @app.post("/api/runs")
    async def start(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            verb = str(body.get("verb", ""))
            overrides = [str(o) for o in body.get("overrides", [])]
            # the recipe with these overrides must load before a process is started for it
            load_recipe(studio.recipe_path, [*studio.overrides, *overrides], studio.profile)
            state = studio.runs.start(verb, overrides, resume=bool(body.get("resume", False)))
        except (RecipeError, ValueError, TypeError) as exc:
            return _error(str(exc))
        return JSONResponse(run_json(studio, state))

    @app.get("/api/runs/{run_id}")
    def one_run(run_id: str) -> JSONResponse:
        try:
            return JSONResponse(run_json(studio, studio.runs.get(run_id), with_progress=True))
        except KeyError:
            return _error(f"no run {run_id}", 404)

    @app.post("/api/runs/{run_id}/stop")
    def stop(run_id: str) -> JSONResponse:
        try:
            return JSONResponse(run_json(studio, studio.runs.stop(run_id)))
        except KeyError:
            return _error(f"no run {run_id}", 404)
        except ValueError as exc:
            return _error(str(exc), 409)

    @app.post("/api/compare")
    async def compare(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            prompt = str(body.get("prompt", ""))
            if len(prompt) > MAX_PROMPT_CHARS:
                raise ValueError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
            max_tokens = min(max(int(body.get("max_tokens", 64)), 1), 1024)
            return JSONResponse(await run_in_threadpool(studio.comparer.ask, prompt, max_tokens))
        except (ValueError, TypeError, RecipeError, OSError, RuntimeError) as exc:
            return _error(str(exc))

