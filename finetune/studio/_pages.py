"""The four pages (Data, Run, Report, Compare) and the login page, rendered on the server from templates; the
small scripts in static/ do the rest (marks, live progress, asking)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from data_prep.deid import PLACEHOLDERS
from data_prep.readers import READERS
from finetune.studio._guard import TOKEN_COOKIE, PathRefused, token_matches
from finetune.studio._marks import reviewed_ids
from finetune.studio._report import report_summary
from finetune.studio._review import KINDS, SEPARATOR_SHOWN, read_page
from finetune.studio._runs import VERBS
from finetune.studio._state import Studio

LANGS = ("auto", "ru", "kk", "zh", "en")


def _plain(text: str, start: int) -> list[dict[str, Any]]:
    """Unmarked text, with the separators between a record's fields as pieces of their own (drawn as a rule)."""
    pieces = []
    for n, part in enumerate(text.split(SEPARATOR_SHOWN)):
        if n:
            pieces.append({"text": SEPARATOR_SHOWN, "start": start, "kind": None, "separator": True})
            start += len(SEPARATOR_SHOWN)
        if part:
            pieces.append({"text": part, "start": start, "kind": None})
            start += len(part)
    return pieces


def segments(text: str, spans: list[list[Any]]) -> list[dict[str, Any]]:
    """The text cut at the spans: plain pieces and marked ones, each with its start offset in the text."""
    pieces, pos = [], 0
    for start, end, kind in sorted(spans):
        if start < pos:
            continue
        if start > pos:
            pieces.extend(_plain(text[pos:start], pos))
        pieces.append({"text": text[start:end], "start": start, "end": end, "kind": kind})
        pos = end
    if pos < len(text):
        pieces.extend(_plain(text[pos:], pos))
    return pieces


def _placeholder_pattern(lang: str) -> tuple[re.Pattern[str], dict[str, str]]:
    labels = PLACEHOLDERS.get(lang, PLACEHOLDERS["ru"])
    kind_of: dict[str, str] = {}
    for kind, label in labels.items():
        kind_of.setdefault(label, kind)
    pattern = re.compile("|".join(re.escape(label) for label in sorted(kind_of, key=len, reverse=True)))
    return pattern, kind_of


def placeholder_segments(text: str, lang: str) -> list[dict[str, Any]]:
    """An example's text with each placeholder the redaction wrote marked by its kind."""
    pattern, kind_of = _placeholder_pattern(lang)
    spans = [[m.start(), m.end(), kind_of[m.group()]] for m in pattern.finditer(text)]
    return segments(text, spans)


def register_pages(app: FastAPI, studio: Studio, templates: Jinja2Templates) -> None:
    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        context.update(recipe=studio.recipe, page_name=name)
        return templates.TemplateResponse(request, f"{name}.html", context)

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/data", status_code=303)

    @app.get("/data")
    def data(request: Request, source: str = "recipe:0", page_number: int = 0, fmt: str = "auto",
             lang: str = "auto") -> HTMLResponse:
        context: dict[str, Any] = {"choices": studio.source_choices(), "source": source, "fmt": fmt, "lang": lang,
                                   "formats": ["auto", *READERS], "langs": LANGS, "kinds": KINDS,
                                   "page_number": max(0, page_number), "error": None, "view": None}
        try:
            chosen = studio.source(source, fmt, lang)
            view = read_page(chosen, studio.recipe.data, max(0, page_number))
            reviewed = reviewed_ids(studio.reviewed)
            for record in view["records"]:
                record["pieces"] = segments(record["text"], record["spans"])
                record["reviewed"] = record["id"] in reviewed
                for example in record["examples"]:
                    for message in example["messages"]:
                        message["pieces"] = placeholder_segments(message["content"], record["lang"])
            context.update(view=view, chosen=chosen.name)
        except (PathRefused, ValueError, OSError) as exc:
            context["error"] = str(exc)
        return page(request, "data", **context)

    @app.get("/run")
    def run(request: Request) -> HTMLResponse:
        runs = studio.runs.list()
        return page(request, "run", verbs=VERBS, runs=runs, base_command=" ".join(studio.runs.command("VERB", [], [])))

    @app.get("/report")
    def report(request: Request) -> HTMLResponse:
        return page(request, "report", report=report_summary(studio.recipe.eval_dir))

    @app.get("/report/html", response_model=None)
    def report_html() -> Response:
        path = studio.recipe.eval_dir / "report.html"
        if not path.is_file():
            return HTMLResponse("<p>No report yet: run eval.</p>", status_code=404)
        response = FileResponse(path, media_type="text/html")
        response.headers["Content-Security-Policy"] = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
        return response

    @app.get("/compare")
    def compare(request: Request) -> HTMLResponse:
        return page(request, "compare", tuned=studio.recipe.eval.tuned)

    @app.get("/login")
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login", failed=False)

    @app.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        given = parse_qs((await request.body()).decode("utf-8", errors="replace")).get("token", [""])[0]
        if studio.token is None or not token_matches(studio.token, given):
            return page(request, "login", failed=True)
        response = RedirectResponse("/data", status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
        return response


