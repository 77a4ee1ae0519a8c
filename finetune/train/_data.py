"""Training rows from a prepared split: text chats, or chats with images for the image+text model.

A row is `{"messages": [...]}`; a message's content is a string or a list of parts
`{"type": "text", "text": ...}` / `{"type": "image", "image": PATH}` with PATH relative to the jsonl file.
Images are checked here (exists, readable) but decoded only when a batch needs them, so a large X-ray set
is never held in memory. Every problem names the file, line and field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import Dataset
from PIL import Image, UnidentifiedImageError

from finetune.models import ChatFormatError, check_messages


class TrainingDataError(ValueError):
    """A training row that cannot be used; the message points at file, line and field."""


def _text_of(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise TrainingDataError(f"{where}.text must be a string")
    return text


def _image_path(part: dict[str, Any], base: Path, where: str) -> str:
    value = part.get("image")
    if not isinstance(value, str) or not value:
        raise TrainingDataError(f"{where}.image must be a path to an image file (relative to the jsonl file)")
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise TrainingDataError(f"{where}.image: no such file {path}")
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError) as exc:
        raise TrainingDataError(f"{where}.image: {path} is not a readable image ({exc})") from None
    return str(path.resolve())


def _parse_row(record: Any, base: Path, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Messages with list contents (image parts as placeholders) and the image paths in order."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TrainingDataError(f"{where}: expected an object with a 'messages' list")
    try:
        messages = check_messages(record["messages"])
    except ChatFormatError as exc:
        raise TrainingDataError(f"{where}: {exc}") from None
    parsed: list[dict[str, Any]] = []
    images: list[str] = []
    for index, message in enumerate(messages):
        content = message["content"]
        if isinstance(content, str):
            parsed.append({"role": message["role"], "content": [{"type": "text", "text": content}]})
            continue
        parts: list[dict[str, Any]] = []
        for part_index, part in enumerate(content):
            part_where = f"{where}: messages[{index}].content[{part_index}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": _text_of(part, part_where)})
            elif kind == "image":
                if message["role"] == "assistant":
                    raise TrainingDataError(f"{part_where}: images belong in user turns, not in the model's answer")
                images.append(_image_path(part, base, part_where))
                parts.append({"type": "image"})
            else:
                raise TrainingDataError(f"{part_where}.type is {kind!r}; expected 'text' or 'image'")
        parsed.append({"role": message["role"], "content": parts})
    return parsed, images


def _as_text(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """String contents, rendered exactly as Gemma's template renders a list of text parts (each trimmed)."""
    return [
        {"role": m["role"], "content": "".join(part["text"].strip() for part in m["content"])} for m in messages
    ]



def split_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """Each non-blank line of a prepared split as (`file:line`, parsed JSON); a line that is not JSON names itself."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None

def load_chat_rows(path: Path) -> tuple[Dataset, bool]:
    """The split as a dataset and whether it holds images.

    Text-only splits keep string contents (TRL tokenizes and can pack them); splits with images keep list contents
    with image placeholders plus an `images` column of paths, which TRL's vision collator fills in per batch.
    """
    rows = [_parse_row(record, path.parent, where) for where, record in split_lines(path)]
    has_images = any(images for _, images in rows)
    if has_images:
        return Dataset.from_list([{"messages": m, "images": images} for m, images in rows]), True
    return Dataset.from_list([{"messages": _as_text(m)} for m, _ in rows]), False
