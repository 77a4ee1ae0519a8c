"""Existing chat data: ``messages`` (OpenAI style), ShareGPT ``conversations`` and alpaca rows.

Roles are mapped onto system/user/assistant, consecutive turns of one role are joined (Gemma needs
alternating roles), and a conversation must end with an assistant turn to teach anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.base import declared_lang, read_rows, row_options, text_of
from data_prep.records import Record, Reject

ROLES: dict[str, str] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "patient": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "doctor": "assistant",
}


def _turns(obj: dict[str, Any]) -> tuple[list[Any], str, str, str] | None:
    """(turns, list field, role key, text key) of whichever chat layout the row uses."""
    if isinstance(obj.get("messages"), list):
        return obj["messages"], "messages", "role", "content"
    if isinstance(obj.get("conversations"), list):
        return obj["conversations"], "conversations", "from", "value"
    return None


def normalize_messages(
    turns: list[Any], field: str, role_key: str, text_key: str
) -> tuple[list[dict[str, str]] | None, str | None]:
    """Validated, role-mapped, alternating messages, or (None, field at fault)."""
    messages: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return None, f"{field}[{i}]"
        role = ROLES.get(text_of(turn.get(role_key, turn.get("role"))).lower())
        content = turn.get(text_key, turn.get("content"))
        if role is None:
            return None, f"{field}[{i}].{role_key}"
        if not isinstance(content, str) or not content.strip():
            return None, f"{field}[{i}].{text_key}"
        if role == "system" and messages:
            return None, f"{field}[{i}].{role_key}"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content.strip()
        else:
            messages.append({"role": role, "content": content.strip()})
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    dialogue = [m for m in messages if m["role"] != "system"]
    if not dialogue or dialogue[0]["role"] != "user":
        return None, field
    return messages, None


CASE_QA_KEYS = frozenset({"qa_pairs", "qa_list", "questions_answers"})
"""Keys (any case) of a case record's list of questions asked in turn about it."""
CASE_TEXT_KEYS = ("title", "case", "description", "context", "text")


def _case_conversation(obj: dict[str, Any], key: str) -> tuple[list[dict[str, str]] | None, str | None]:
    """A case record ({title, description, QA_pairs: [{question, answer}, …]}) as one conversation: the case and
    the first question, then each further question in turn; (None, field at fault) when a pair is broken."""
    pairs = obj[key]
    if not isinstance(pairs, list) or not pairs:
        return None, key
    case = "\n".join(text for k in CASE_TEXT_KEYS if (text := text_of(obj.get(k))))
    messages: list[dict[str, str]] = []
    for i, pair in enumerate(pairs):
        question = text_of(pair.get("question") or pair.get("q")) if isinstance(pair, dict) else ""
        answer = text_of(pair.get("answer") or pair.get("a")) if isinstance(pair, dict) else ""
        if not question or not answer:
            return None, f"{key}[{i}]"
        user = f"{case}\n\n{question}" if case and not messages else question
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return messages, None


def chat_record(source: str, location: str, obj: dict[str, Any], lang: str | None) -> Record | Reject:
    case_key = next((k for k in obj if k.lower() in CASE_QA_KEYS), None)
    if found := _turns(obj):
        messages, bad = normalize_messages(*found)
    elif case_key is not None:
        messages, bad = _case_conversation(obj, case_key)
    elif "input" in obj and "target" in obj and "instruction" not in obj:
        question, answer = text_of(obj.get("input")), text_of(obj.get("target"))
        if not question or not answer:
            return Reject(source, location, "missing_field", "input" if not question else "target")
        messages, bad = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], None
    elif "instruction" in obj and "output" in obj:
        instruction, extra, output = (text_of(obj.get(k)) for k in ("instruction", "input", "output"))
        if not instruction:
            return Reject(source, location, "missing_field", "instruction")
        if not output:
            return Reject(source, location, "missing_field", "output")
        user = f"{instruction}\n\n{extra}" if extra else instruction
        messages, bad = [{"role": "user", "content": user}, {"role": "assistant", "content": output}], None
        if text_of(obj.get("system")):
            messages.insert(0, {"role": "system", "content": text_of(obj["system"])})
    else:
        return Reject(source, location, "missing_field", "messages")
    if messages is None:
        return Reject(source, location, "invalid_chat", bad)
    ident = text_of(obj.get("id") or obj.get("sample_id")) or location.rsplit(":", 1)[-1]
    return Record(
        source, location, f"{source}#{ident}", declared_lang(obj, lang) or "auto", {"messages": messages}, kind="chat"
    )


def read_chat(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """Stream chat rows from JSONL/JSON/CSV/XLSX/Parquet."""
    options = row_options(source)

    def convert(name: str, location: str, obj: dict[str, Any]) -> Record | Reject:
        return chat_record(name, location, obj, lang)

    yield from read_rows(Path(path), convert, **options)
