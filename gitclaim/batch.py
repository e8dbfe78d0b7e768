"""Reading a batch of new tasks from a TOML or JSON file (the CLI's ``add --file``)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from .errors import BadInput

MAX_BATCH_BYTES = 64 * 1024 * 1024


def read_batch(path: Path) -> list[dict[str, Any]]:
    """Tasks from ``path``: TOML ``[[task]]`` tables, or JSON (a list, or ``{"tasks": [...]}``).

    Raises :class:`BadInput` naming the file and what is wrong.
    """
    try:
        if path.stat().st_size > MAX_BATCH_BYTES:
            raise BadInput(f"{path}: larger than {MAX_BATCH_BYTES >> 20} MiB", path=str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read: {e}", path=str(path)) from None
    suffix = path.suffix.lower()
    # A TOML batch starts with "[[task]]", so only the suffix or a leading "{"
    # (or a "[" that is not "[[") says JSON.
    head = text.lstrip()
    is_json = suffix == ".json" or (
        suffix != ".toml" and (head.startswith("{") or (head.startswith("[") and not head.startswith("[[")))
    )
    doc: Any
    if is_json:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"{path}: malformed JSON: {e}", path=str(path)) from None
        if isinstance(doc, dict):
            doc = doc.get("tasks", doc.get("task"))
    else:
        try:
            doc = tomllib.loads(text).get("task")
        except tomllib.TOMLDecodeError as e:
            raise BadInput(f"{path}: malformed TOML: {e}", path=str(path)) from None
    if not isinstance(doc, list) or not doc:
        raise BadInput(
            f"{path}: expected a non-empty list of tasks ([[task]] tables in TOML; a list or"
            ' {"tasks": [...]} in JSON)',
            path=str(path),
        )
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise BadInput(f"{path}: task #{i + 1} is not a table/object", path=str(path), index=i)
    return doc
