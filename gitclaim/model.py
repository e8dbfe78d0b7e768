"""The task model and its TOML form (schema 2). Pure: no I/O, no clock, no git.

A task file is a TOML document. Schema 2 adds ``parent``, ``result`` and
``[[notes]]``; a task that uses none of them is still written as schema 1,
so that a reader of schema 1 keeps reading every task that does not need
the new fields, and refuses (clearly) only those that do. gitclaim owns the fields listed in
``TASK_FIELDS``; any other key a human adds is kept in ``Task.extra`` and
written back unchanged by every rewrite.
"""

from __future__ import annotations

import tomllib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import tomli_w

from .errors import BadInput, SchemaTooNew, StoreCorrupt
from .ids import is_valid_id, validate_agent

SCHEMA = 2  # the newest task schema this gitclaim reads and writes
STORE_SCHEMA = 1  # the store file (gitclaim.toml) is unchanged by schema 2
MAX_NOTE = 4000  # characters of one note
MAX_RESULT = 20_000  # characters of a result
DEFAULT_PRIORITY = 2
PRIORITY_MIN, PRIORITY_MAX = 0, 9


class State(StrEnum):
    BACKLOG = "backlog"
    TODO = "todo"
    ACTIVE = "active"
    WAITING = "waiting"
    REVIEW = "review"
    DONE = "done"
    CANCELLED = "cancelled"
    SOMEDAY = "someday"
    FAILED = "failed"


STATES = tuple(s.value for s in State)
CLAIMABLE = frozenset({State.BACKLOG, State.TODO})


@dataclass(frozen=True, slots=True)
class Claim:
    holder: str
    claimed_at: datetime
    lease_seconds: int | None = None  # None: no lease, the claim never expires
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[Claim], tuple[Any, ...]]:
        # dataclasses' default for slots calls fields() per object: 25% slower to unpickle
        return (Claim, (self.holder, self.claimed_at, self.lease_seconds, self.extra))


@dataclass(frozen=True, slots=True)
class Note:
    """One note on a task: appended by its author, never rewritten."""

    at: datetime
    by: str
    text: str

    def __reduce__(self) -> tuple[type[Note], tuple[Any, ...]]:
        return (Note, (self.at, self.by, self.text))

    def to_json(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "by": self.by, "text": self.text}


@dataclass(frozen=True, slots=True)
class Result:
    """What a task's work produced, recorded with its completion."""

    text: str
    by: str
    at: datetime

    def __reduce__(self) -> tuple[type[Result], tuple[Any, ...]]:
        return (Result, (self.text, self.by, self.at))

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "by": self.by, "at": _iso(self.at)}


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    title: str
    state: State = State.TODO
    priority: int = DEFAULT_PRIORITY
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    acceptance: tuple[str, ...] = ()
    created_at: datetime | None = None
    created_by: str | None = None
    claim: Claim | None = None
    waiting_for: str | None = None
    fail_reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None
    result: Result | None = None
    notes: tuple[Note, ...] = ()

    @property
    def holder(self) -> str | None:
        return self.claim.holder if self.claim else None

    def __reduce__(self) -> tuple[type[Task], tuple[Any, ...]]:
        return (Task, tuple(getattr(self, name) for name in _TASK_SLOTS))

    def evolve(self, **changes: Any) -> Task:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "state": self.state.value,
            "priority": self.priority,
            "depends_on": list(self.depends_on),
            "tags": list(self.tags),
            "description": self.description,
            "acceptance": list(self.acceptance),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "claim": None
            if self.claim is None
            else {
                "holder": self.claim.holder,
                "claimed_at": _iso(self.claim.claimed_at),
                "lease_seconds": self.claim.lease_seconds,
            },
            "waiting_for": self.waiting_for,
            "fail_reason": self.fail_reason,
            "extra": _jsonable(dict(self.extra)),
            "parent": self.parent,
            "result": None if self.result is None else self.result.to_json(),
            "notes": [n.to_json() for n in self.notes],
        }


_TASK_SLOTS = tuple(f.name for f in fields(Task))

TASK_FIELDS = (
    "schema", "id", "title", "state", "priority", "depends_on", "tags",
    "description", "acceptance", "created_at", "created_by", "claim",
    "waiting_for", "fail_reason", "parent", "result", "notes",
)  # fmt: skip
CLAIM_FIELDS = ("holder", "claimed_at", "lease_seconds")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The store-level file, ``gitclaim.toml`` at the root of the branch."""

    schema: int = STORE_SCHEMA
    default_priority: int = DEFAULT_PRIORITY
    id_prefix: str = "gc-"
    lease_seconds: int = 0  # 0: claims carry no lease unless asked for
    created_at: datetime | None = None
    created_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Problem:
    """A task file that could not be read. Listings skip it and say so."""

    path: str
    message: str
    code: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def utc(dt: datetime) -> datetime:
    """Normalise to UTC with whole seconds: what a task file stores."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


# --- reading -----------------------------------------------------------------


class _Bad(Exception):
    pass


def _req_str(doc: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        raise _Bad(f"'{key}' must be a {'string' if allow_empty else 'non-empty string'}, got {v!r}")
    return v


def _str_list(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    v = doc.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Bad(f"'{key}' must be a list of strings, got {v!r}")
    return tuple(v)


def _when(v: Any, key: str) -> datetime:
    if not isinstance(v, datetime):
        raise _Bad(f"'{key}' must be a TOML date-time such as 2026-01-31T12:00:00Z, got {v!r}")
    try:
        return utc(v)
    except OverflowError:
        raise _Bad(f"'{key}' {v!r} is out of range once converted to UTC") from None


def _check_schema(doc: Mapping[str, Any], what: str, supported: int = SCHEMA) -> int:
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise _Bad(f"'schema' must be a positive integer, got {schema!r}")
    if schema > supported:
        raise SchemaTooNew(
            f"{what} uses schema {schema}, newer than this gitclaim understands ({supported})",
            schema=schema,
            supported=supported,
        )
    return schema


MAX_FILE_BYTES = 1 << 20  # a task is a page of text; a larger file is refused, not parsed


def parse_toml(data: bytes, path: str) -> dict[str, Any]:
    if len(data) > MAX_FILE_BYTES:
        raise StoreCorrupt(
            f"{path}: {len(data)} bytes, larger than the {MAX_FILE_BYTES >> 20} MiB a gitclaim file may be", path=path
        )
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StoreCorrupt(f"{path}: not UTF-8 text ({e.reason})", path=path) from None
    except (tomllib.TOMLDecodeError, ValueError) as e:
        # ValueError: tomllib's limit on integer digits
        raise StoreCorrupt(f"{path}: malformed TOML: {e}", path=path) from None
    except RecursionError:
        raise StoreCorrupt(f"{path}: malformed TOML: nested too deeply", path=path) from None


def _task_id(doc: Mapping[str, Any], expected_id: str | None) -> str:
    tid = _req_str(doc, "id")
    if not is_valid_id(tid):
        raise _Bad(f"'id' {tid!r} is not a legal task id")
    if expected_id is not None and tid != expected_id:
        raise _Bad(f"'id' is {tid!r} but the file is named for {expected_id!r}")
    return tid


def _priority(doc: Mapping[str, Any]) -> int:
    priority = doc.get("priority", DEFAULT_PRIORITY)
    if isinstance(priority, bool) or not isinstance(priority, int) or not (PRIORITY_MIN <= priority <= PRIORITY_MAX):
        raise _Bad(f"'priority' must be an integer {PRIORITY_MIN}-{PRIORITY_MAX}, got {priority!r}")
    return priority


def _deps(doc: Mapping[str, Any], tid: str) -> tuple[str, ...]:
    deps = _str_list(doc, "depends_on")
    for d in deps:
        if not is_valid_id(d):
            raise _Bad(f"'depends_on' names an illegal task id {d!r}")
    if tid in deps:
        raise _Bad("a task cannot depend on itself")
    return deps


def _claim(raw_claim: Any) -> Claim:
    if not isinstance(raw_claim, dict):
        raise _Bad("'claim' must be a table")
    holder = raw_claim.get("holder")
    try:
        validate_agent(holder)
    except Exception:
        raise _Bad(f"'claim.holder' {holder!r} is not a legal agent name") from None
    if "claimed_at" not in raw_claim:
        raise _Bad("'claim.claimed_at' is missing")
    lease = raw_claim.get("lease_seconds")
    if lease is not None and (isinstance(lease, bool) or not isinstance(lease, int) or lease <= 0):
        raise _Bad(f"'claim.lease_seconds' must be a positive integer, got {lease!r}")
    return Claim(
        holder=str(holder),
        claimed_at=_when(raw_claim["claimed_at"], "claim.claimed_at"),
        lease_seconds=lease,
        extra={k: v for k, v in raw_claim.items() if k not in CLAIM_FIELDS},
    )


def _agent_field(v: Any, key: str) -> str:
    try:
        validate_agent(v)
    except Exception:
        raise _Bad(f"'{key}' {v!r} is not a legal agent name") from None
    return str(v)


def _text(v: Any, key: str, limit: int) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"'{key}' must be a non-empty string, got {v!r}")
    if len(v) > limit:
        raise _Bad(f"'{key}' is {len(v)} characters, more than the {limit} it may be")
    return v


def _notes(raw: Any) -> tuple[Note, ...]:
    if not isinstance(raw, list):
        raise _Bad("'notes' must be an array of tables ([[notes]] with at, by and text)")
    out = []
    for i, n in enumerate(raw):
        where = f"notes[{i}]"
        if not isinstance(n, dict) or set(n) != {"at", "by", "text"}:
            raise _Bad(f"'{where}' must be a table of exactly at, by and text, got {n!r}")
        out.append(Note(_when(n["at"], f"{where}.at"), _agent_field(n["by"], f"{where}.by"),
                        _text(n["text"], f"{where}.text", MAX_NOTE)))  # fmt: skip
    return tuple(out)


def _result(raw: Any) -> Result:
    if not isinstance(raw, dict) or set(raw) != {"text", "by", "at"}:
        raise _Bad(f"'result' must be a table of exactly text, by and at, got {raw!r}")
    return Result(_text(raw["text"], "result.text", MAX_RESULT), _agent_field(raw["by"], "result.by"),
                  _when(raw["at"], "result.at"))  # fmt: skip


def _parent(doc: Mapping[str, Any], tid: str) -> str | None:
    parent = doc.get("parent")
    if parent is None:
        return None
    if not isinstance(parent, str) or not is_valid_id(parent):
        raise _Bad(f"'parent' must be a task id, got {parent!r}")
    if parent == tid:
        raise _Bad("a task cannot be its own parent")
    return parent


def _schema2(doc: Mapping[str, Any], schema: int) -> tuple[str | None, Result | None, tuple[Note, ...]]:
    """parent, result and notes: schema 2's fields (in a schema 1 file, they are a user's own)."""
    if schema < 2:
        return None, None, ()
    tid = str(doc["id"])
    result = _result(doc["result"]) if "result" in doc else None
    return _parent(doc, tid), result, _notes(doc["notes"]) if "notes" in doc else ()


def _owned(schema: int) -> tuple[str, ...]:
    return TASK_FIELDS if schema >= 2 else TASK_FIELDS[:-3]


def task_from_doc(doc: Mapping[str, Any], *, expected_id: str | None, path: str) -> Task:
    """Build a :class:`Task` from a parsed TOML document.

    Raises :class:`StoreCorrupt` naming ``path`` and the field, or
    :class:`SchemaTooNew`.
    """
    try:
        schema = _check_schema(doc, path)
        tid = _task_id(doc, expected_id)
        raw_state = doc.get("state")
        if raw_state not in STATES:
            raise _Bad(f"unknown state {raw_state!r}; known states: {', '.join(STATES)}")
        priority = _priority(doc)
        deps = _deps(doc, tid)
        created_at = _when(doc["created_at"], "created_at") if "created_at" in doc else None
        created_by = doc.get("created_by")
        if created_by is not None and not isinstance(created_by, str):
            raise _Bad(f"'created_by' must be a string, got {created_by!r}")
        raw_claim = doc.get("claim")
        claim = _claim(raw_claim) if raw_claim is not None else None
        state = State(raw_state)
        if state in (State.ACTIVE, State.WAITING, State.REVIEW) and claim is None:
            raise _Bad(f"a task in state {state.value} must have a [claim] table with holder and claimed_at")
        for key in ("waiting_for", "fail_reason"):
            if key in doc and not isinstance(doc[key], str):
                raise _Bad(f"'{key}' must be a string, got {doc[key]!r}")
        parent, result, notes = _schema2(doc, schema)
        owned = _owned(schema)
        return Task(
            id=tid,
            title=_req_str(doc, "title"),
            state=state,
            priority=priority,
            depends_on=deps,
            tags=_str_list(doc, "tags"),
            description=_req_str(doc, "description", allow_empty=True) if "description" in doc else "",
            acceptance=_str_list(doc, "acceptance"),
            created_at=created_at,
            created_by=created_by,
            claim=claim,
            waiting_for=doc.get("waiting_for"),
            fail_reason=doc.get("fail_reason"),
            extra={k: v for k, v in doc.items() if k not in owned},
            parent=parent,
            result=result,
            notes=notes,
        )
    except _Bad as e:
        raise StoreCorrupt(f"{path}: {e}", path=path, task=expected_id) from None


# Parsed tasks by content: one command reads the same files more than once
# (deciding a change, then validating it before the push; a cycle walk, then
# the validator's), and TOML parsing is the cost. Tasks are immutable.
_PARSED: OrderedDict[tuple[bytes, str | None], Task] = OrderedDict()
_PARSED_MAX = 10_000


def parse_task(data: bytes, *, expected_id: str | None, path: str) -> Task:
    key = (data, expected_id)
    found = _PARSED.get(key)
    if found is not None:
        _PARSED.move_to_end(key)
        return found
    task = task_from_doc(parse_toml(data, path), expected_id=expected_id, path=path)
    _PARSED[key] = task
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return task


def parse_store_config(data: bytes, path: str = "gitclaim.toml") -> StoreConfig:
    doc = parse_toml(data, path)
    try:
        _check_schema(doc, path, STORE_SCHEMA)
        if doc.get("kind") != "gitclaim-store":
            raise _Bad("'kind' must be \"gitclaim-store\"")
        defaults = doc.get("defaults", {})
        if not isinstance(defaults, dict):
            raise _Bad("'defaults' must be a table")
        prio = defaults.get("priority", DEFAULT_PRIORITY)
        if isinstance(prio, bool) or not isinstance(prio, int) or not PRIORITY_MIN <= prio <= PRIORITY_MAX:
            raise _Bad(f"'defaults.priority' must be an integer {PRIORITY_MIN}-{PRIORITY_MAX}")
        prefix = defaults.get("id_prefix", "gc-")
        if not isinstance(prefix, str) or not (prefix == "" or is_valid_id(prefix + "x")):
            raise _Bad(f"'defaults.id_prefix' {prefix!r} would not make legal ids")
        lease = defaults.get("lease_seconds", 0)
        if isinstance(lease, bool) or not isinstance(lease, int) or lease < 0:
            raise _Bad(f"'defaults.lease_seconds' must be a non-negative integer, got {lease!r}")
        return StoreConfig(
            schema=doc["schema"],
            default_priority=prio,
            id_prefix=prefix,
            lease_seconds=lease,
            created_at=_when(doc["created_at"], "created_at") if "created_at" in doc else None,
            created_by=doc.get("created_by") if isinstance(doc.get("created_by"), str) else None,
            extra={k: v for k, v in doc.items() if k not in ("schema", "kind", "defaults", "created_at", "created_by")},
        )
    except _Bad as e:
        raise StoreCorrupt(f"{path}: {e}", path=path) from None


# --- writing -----------------------------------------------------------------


def task_schema(task: Task) -> int:
    """The oldest schema that holds ``task``: 2 only for a task with a parent, a result or notes."""
    return 2 if task.parent is not None or task.result is not None or task.notes else 1


def task_to_doc(task: Task) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": task_schema(task),
        "id": task.id,
        "title": task.title,
        "state": task.state.value,
        "priority": task.priority,
        "depends_on": list(task.depends_on),
        "tags": list(task.tags),
    }
    if task.created_at is not None:
        doc["created_at"] = utc(task.created_at)
    if task.created_by is not None:
        doc["created_by"] = task.created_by
    if task.waiting_for is not None:
        doc["waiting_for"] = task.waiting_for
    if task.fail_reason is not None:
        doc["fail_reason"] = task.fail_reason
    if task.parent is not None:
        doc["parent"] = task.parent
    doc["description"] = task.description
    doc["acceptance"] = list(task.acceptance)
    for k, v in task.extra.items():
        doc[k] = v
    if task.claim is not None:
        claim: dict[str, Any] = {"holder": task.claim.holder, "claimed_at": utc(task.claim.claimed_at)}
        if task.claim.lease_seconds is not None:
            claim["lease_seconds"] = task.claim.lease_seconds
        claim.update(task.claim.extra)
        doc["claim"] = claim
    if task.result is not None:
        r = task.result
        doc["result"] = {"text": r.text, "by": r.by, "at": utc(r.at)}
    if task.notes:
        doc["notes"] = [{"at": utc(n.at), "by": n.by, "text": n.text} for n in task.notes]
    return doc


def _has_cr(value: Any) -> bool:
    if isinstance(value, str):
        return "\r" in value
    if isinstance(value, dict):
        return any(_has_cr(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_cr(v) for v in value)
    return False


def dump_task(task: Task) -> bytes:
    """The task's file. Raises :class:`BadInput` for a task larger than any
    reader (this one, the hooks, the validator) would accept, or one of
    schema 1 whose own fields schema 2 would read as its new fields."""
    doc = task_to_doc(task)
    clash = sorted(set(task.extra) & set(TASK_FIELDS[-3:]))
    if clash and doc["schema"] >= 2:
        raise BadInput(
            f"task {task.id} has fields of its own named {', '.join(clash)}, which schema 2 owns:"
            " rename them by hand first",
            task=task.id,
            fields=clash,
        )
    # A raw CR inside a multi-line string reads back as a plain newline, so
    # text holding one is written as an escaped single-line string instead.
    multiline = not _has_cr(doc)
    notes = doc.pop("notes") if task.notes else []  # (in a schema 1 task, "notes" is a field of its own)
    text = tomli_w.dumps(doc, multiline_strings=multiline)
    # Always [[notes]] tables, last in the file: appending a note appends lines (tomli_w would
    # write short ones as one inline array, which every note then rewrites).
    for n in notes:
        text += "\n[[notes]]\n" + tomli_w.dumps(n, multiline_strings=multiline)
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise BadInput(
            f"task {task.id} would be {len(data)} bytes, larger than the {MAX_FILE_BYTES >> 20} MiB"
            " a gitclaim file may be: keep long text elsewhere and link to it",
            task=task.id,
            bytes=len(data),
        )
    return data


def dump_store_config(cfg: StoreConfig) -> bytes:
    doc: dict[str, Any] = {"schema": STORE_SCHEMA, "kind": "gitclaim-store"}
    if cfg.created_at is not None:
        doc["created_at"] = utc(cfg.created_at)
    if cfg.created_by is not None:
        doc["created_by"] = cfg.created_by
    doc.update(cfg.extra)
    doc["defaults"] = {
        "priority": cfg.default_priority,
        "id_prefix": cfg.id_prefix,
        "lease_seconds": cfg.lease_seconds,
    }
    return tomli_w.dumps(doc).encode("utf-8")


def task_from_input(
    raw: Mapping[str, Any],
    *,
    default_priority: int,
    created_at: datetime,
    created_by: str,
) -> Task:
    """Build a new task from user input (a CLI call or one entry of a batch file).

    The id must already be set. Raises :class:`gitclaim.errors.BadInput`.
    """
    from .errors import BadInput

    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "state": State.TODO.value,
        "priority": default_priority,
        "description": "",
        **{k: v for k, v in raw.items() if v is not None},
        "created_at": created_at,
        "created_by": created_by,
    }
    if "claim" in raw:
        raise BadInput("a new task cannot carry a claim; claim it with `gitclaim claim`", task=raw.get("id"))
    for key, how in (("notes", "gitclaim note"), ("result", "gitclaim done --result")):
        if key in raw:
            raise BadInput(f"a new task cannot carry {key}; add them with `{how}`", task=raw.get("id"), field=key)
    if doc["state"] not in (State.TODO.value, State.BACKLOG.value, State.SOMEDAY.value):
        raise BadInput(
            f"a new task starts in todo, backlog or someday, not {doc['state']!r}",
            task=raw.get("id"),
        )
    try:
        return task_from_doc(doc, expected_id=None, path=f"task {raw.get('id')!r}")
    except (StoreCorrupt, SchemaTooNew) as e:
        raise BadInput(e.message.replace("task ", "new task ", 1), **e.details) from None


def sort_key_ready(task: Task) -> tuple[int, datetime, str]:
    return (task.priority, task.created_at or datetime.min.replace(tzinfo=UTC), task.id)


def as_tuple(values: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(values or ())
