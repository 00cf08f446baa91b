"""Metric points read from the file a training job wrote (the ``metrics_file`` input).

The file is CSV with a header naming fields of a metric point (``key``, ``value``, and any of ``step``,
``timestamp``, ``dataset_name``, ``dataset_digest``, ``model_id``), or JSON Lines with the same fields. It is
read in its order and only through its last newline: a last line without one is a row still being written,
and waits for the next ``up``.

No point is ever kept in state. What is logged is three numbers about the file (``Logged``: rows, bytes and
the sha256 of those bytes), enough to tell rows added at the end (an update that logs only them) from a change
to rows already logged (a replace). What Check read (``Summary``: the same, with points per key and the path)
is a checked input, so a preview can show it and Diff needs no old copy of the file. Each batch sent carries a
progress tag (``PROGRESS_TAG``) with the ``Logged`` it reaches and the timestamp its rows without one got, so
an append cut short resumes where it stopped, with the same timestamp, and never logs a row twice.

Check and Diff import this module: no HTTP client, no pydantic. Memory stays flat in the file's length,
but for Check's duplicate test: one 8-byte digest per row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pulumi_mlflow_runs.core.limits import key_problem, normalize_metric_value

PROP = "metrics_file"
SUMMARY = "metrics_file_summary"
"""The checked input Check adds: what it read of the file (``Summary.as_dict``)."""
LOGGED = "metrics_file_logged"
"""The output that says how much of the file is logged (``Logged.as_dict``)."""
PROGRESS_TAG = "pulumi.metrics_file"
FIELDS = ("key", "value", "step", "timestamp", "dataset_name", "dataset_digest", "model_id")
BATCH_ROWS = 999
"""Rows per log-batch: the request's limit of 1,000 items, less the progress tag."""
BATCH_BYTES = 900_000
"""A log-batch's body stays under the 1 MB limit: a point takes at most its strings' length (each character up
to 6 bytes in JSON) and 120 bytes more."""
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_NONFINITE = {"nan": "NaN", "inf": "Infinity", "+inf": "Infinity", "-inf": "-Infinity", "infinity": "Infinity",
              "+infinity": "Infinity", "-infinity": "-Infinity"}  # fmt: skip
_MAX_INT64 = 2**63 - 1
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class FileProblem(ValueError):
    """A file that cannot be read as metric points: the message names the file, the line and the column."""


@dataclass(frozen=True)
class Logged:
    """The logged part of a file: its first ``rows`` data rows, ``bytes`` long (header included)."""

    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}

    @staticmethod
    def of(value: Any) -> Logged | None:
        """From state (numbers may come back as floats), or None when there is none or it is malformed."""
        if not isinstance(value, Mapping):
            return None
        try:
            return Logged(int(value["rows"]), int(value["bytes"]), str(value["sha256"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Summary:
    """What Check read: the complete rows, and how many points each key has among them."""

    path: str
    format: str
    complete: Logged
    """The complete rows (``Logged``'s form: what state would say once they are all logged)."""
    points: dict[str, int]
    waiting: bool = False
    """A last line without its newline: a row still being written, left for the next ``up``."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            **self.complete.as_dict(),
            "points": dict(sorted(self.points.items())),
        }
        if self.waiting:
            out["waiting"] = True
        return out

    @staticmethod
    def of(value: Any) -> Summary | None:
        logged = Logged.of(value)
        if logged is None or not isinstance(value, Mapping) or not isinstance(value.get("path"), str):
            return None
        points = value.get("points") or {}
        return Summary(
            value["path"],
            str(value.get("format") or "csv"),
            logged,
            {str(k): int(v) for k, v in points.items()} if isinstance(points, Mapping) else {},
            bool(value.get("waiting")),
        )


def file_format(path: str) -> str:
    """``jsonl`` for ``.jsonl``/``.ndjson``/``.json`` files, else ``csv``."""
    return "jsonl" if path.lower().endswith(_JSONL_SUFFIXES) else "csv"


# ---- reading rows ------------------------------------------------------------------------------------------


class _Reader:
    """The complete rows of a file in order, each ``(line, point)`` with the point in normal form (no timestamp
    where the row has none), with a running sha256 of the bytes read (header included). With ``start``, the rows
    after it: the bytes before it are hashed (and their lines counted) without being parsed, but for a CSV file's
    header."""

    def __init__(self, path: str, start: Logged | None = None) -> None:
        self.path = path
        self.format = file_format(path)
        self.sha = hashlib.sha256()
        self.offset = 0
        self.rows = 0
        self.waiting = False
        self._start = start if start is not None and start.bytes else None
        self._header: list[str] | None = None
        self._plain: tuple[int, int, int, int | None, int | None] | None = None
        """The number of columns and where ``key``, ``value``, ``step`` and ``timestamp`` are, in a header of
        those alone: rows of such a file take a fast path (``_fast``)."""
        self._key_ok: set[str] = set()

    def logged(self) -> Logged:
        """The rows read so far, as ``Logged``: what the file's log holds once they are sent."""
        return Logged(self.rows, self.offset, self.sha.hexdigest())

    def where(self, line: int, column: int | str | None = None) -> str:
        at = f"{self.path}, line {line}"
        if column is None:
            return at
        return f"{at}, column {column}"

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
        except FileNotFoundError:
            raise FileProblem(f"no file at {self.path} (a path relative to the program's folder)") from None
        except OSError as exc:
            raise FileProblem(f"{self.path} cannot be read: {exc.strerror or exc}") from None
        with f:
            line = self._skip(f) if self._start is not None else 0
            hash_line, fast = self.sha.update, self._fast  # once, not per row: a send reads every row
            for raw in f:
                line += 1
                if not raw.endswith(b"\n"):
                    self.waiting = bool(raw.strip())
                    return
                hash_line(raw)
                self.offset += len(raw)
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise FileProblem(f"{self.where(line, exc.start + 1)}: not UTF-8 text") from None
                point = fast(text) if self._plain is not None else None
                if point is None:
                    if not text.strip():
                        continue
                    point = self._point(line, text)
                    if point is None:
                        continue  # the header
                self.rows += 1
                yield line, point

    def _skip(self, f: Any) -> int:
        """Hash the bytes before ``start`` and count their lines, reading the header on the way; the file is then
        at ``start``. The caller has checked that those bytes are what was logged."""
        assert self._start is not None
        if self.format == "csv":
            for number, raw in enumerate(f, 1):
                text = raw.decode("utf-8", "replace").strip()
                if text:
                    self._point(number, text)
                    break
            f.seek(0)
        lines, left = 0, self._start.bytes
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            self.sha.update(chunk)
            lines += chunk.count(b"\n")
            left -= len(chunk)
        self.offset, self.rows = self._start.bytes - left, self._start.rows
        return lines

    def _fast(self, text: str) -> dict[str, Any] | None:
        """A row of a ``key,value,step,timestamp`` file whose fields are all fine and whose key was seen before,
        in normal form; None sends it down the full path (``_point``), which names any problem."""
        if '"' in text:
            return None
        cells = text.split(",")
        assert self._plain is not None  # called once the header made it
        width, k, v, st, ts = self._plain
        if len(cells) != width:
            return None
        key = cells[k]
        if key not in self._key_ok:
            return None
        try:
            value = float(cells[v])
            step = int(cells[st]) if st is not None and cells[st] else 0
            stamp = int(cells[ts]) if ts is not None and cells[ts] else None
        except ValueError:
            return None
        if value - value != 0 or not -(2**63) <= step <= _MAX_INT64:  # NaN or infinite: the full path spells it
            return None
        point: dict[str, Any] = {"key": key, "value": value, "step": step}
        if stamp is not None:
            if not 0 <= stamp <= _MAX_INT64:
                return None
            point["timestamp"] = stamp
        return point

    def _point(self, line: int, text: str) -> dict[str, Any] | None:
        if self.format == "jsonl":
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FileProblem(f"{self.where(line, exc.colno)}: not JSON ({exc.msg})") from None
            if not isinstance(item, dict):
                raise FileProblem(f"{self.where(line, 1)}: a row must be a JSON object")
            columns = {name: text.find(json.dumps(name)) + 1 for name in item}
            unknown = sorted(set(item) - set(FIELDS))
            if unknown:
                raise FileProblem(
                    f"{self.where(line, columns[unknown[0]])}: {unknown[0]!r} is not a field of a metric point "
                    f"(fields: {', '.join(FIELDS)})"
                )
            return self._normal(line, {k: v for k, v in item.items() if v is not None}, columns)
        cells = next(csv.reader([text]))
        if self._header is None:
            self._header = self._read_header(line, cells)
            return None
        if len(cells) != len(self._header):
            raise FileProblem(f"{self.where(line)}: has {len(cells)} fields where the header names {len(self._header)}")
        item = {name: cell for name, cell in zip(self._header, cells, strict=True) if cell != ""}
        columns = {name: i + 1 for i, name in enumerate(self._header)}
        return self._normal(line, item, columns)

    def _read_header(self, line: int, cells: list[str]) -> list[str]:
        names = self._checked_header(line, cells)
        if set(names) <= {"key", "value", "step", "timestamp"}:
            at = {name: i for i, name in enumerate(names)}
            self._plain = (len(names), at["key"], at["value"], at.get("step"), at.get("timestamp"))
        return names

    def _checked_header(self, line: int, cells: list[str]) -> list[str]:
        names = [c.strip() for c in cells]
        for i, name in enumerate(names):
            if name not in FIELDS:
                raise FileProblem(
                    f"{self.where(line, i + 1)}: the header names {name!r}, which is not a field of a metric "
                    f"point (fields: {', '.join(FIELDS)}); the first line must name the columns"
                )
            if names.index(name) != i:
                raise FileProblem(f"{self.where(line, i + 1)}: the header names {name!r} twice")
        for required in ("key", "value"):
            if required not in names:
                raise FileProblem(f"{self.where(line)}: the header must name a {required!r} column")
        return names

    def _normal(self, line: int, item: Mapping[str, Any], columns: Mapping[str, int]) -> dict[str, Any]:
        """The row as a point in ``run_spec``'s normal form, or a ``FileProblem`` at the field that breaks it."""

        def bad(name: str, reason: str) -> FileProblem:
            return FileProblem(f"{self.where(line, columns.get(name))} ({name}): {reason}")

        for required in ("key", "value"):
            if item.get(required) is None:
                raise bad(required, "is required")
        key = item["key"]
        if not isinstance(key, str):
            raise bad("key", "must be a string")
        if key not in self._key_ok:
            reason = key_problem(key, "metric")
            if reason:
                raise bad("key", reason)
            self._key_ok.add(key)
        point: dict[str, Any] = {"key": key, "value": _value(item["value"])}
        if point["value"] is None:
            raise bad("value", "must be a number (or NaN, Infinity, -Infinity)")
        for name, low in (("step", -(2**63)), ("timestamp", 0)):
            if item.get(name) is not None:
                number = _whole(item[name])
                if number is None or not low <= number <= _MAX_INT64:
                    raise bad(name, f"must be a whole number from {low} to {_MAX_INT64}")
                point[name] = number
        point.setdefault("step", 0)
        for name in ("dataset_name", "dataset_digest", "model_id"):
            if item.get(name) is not None:
                if not isinstance(item[name], str):
                    raise bad(name, "must be a string")
                point[name] = item[name]
        return point


def _value(raw: Any) -> float | str | None:
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in _NONFINITE:
            return _NONFINITE[text.lower()]
        try:
            return normalize_metric_value(float(text))
        except ValueError:
            return None
    return normalize_metric_value(raw)


def _whole(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and raw.is_integer() else None
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            return None
    return None


def point_ident(point: Mapping[str, Any]) -> int:
    """A 64-bit digest of what makes a declared point a repeat of another: key, value, step, timestamp (as
    ``run_spec`` tells repeats in ``metrics``), and the dataset and model fields."""
    text = json.dumps([point.get(f) for f in FIELDS], separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# ---- Check ------------------------------------------------------------------------------------------------


def summarize(path: str, inline: Sequence[Mapping[str, Any]] = ()) -> Summary:
    """Read the whole file as Check does: every row checked, no row repeated, none also in ``inline`` (the
    ``metrics`` input). Raises ``FileProblem``. Holds one 64-bit digest per row (the repeat test), no point."""
    reader = _Reader(path)
    seen: set[int] = set()
    inline_at = {point_ident(p): i for i, p in enumerate(inline)}
    points: dict[str, int] = {}
    for line, point in reader:
        ident = point_ident(point)
        if ident in seen:
            first = _first_line_of(path, point)
            if first is not None and first != line:
                raise FileProblem(
                    f"{reader.where(line)}: repeats line {first} (same key, value, step and timestamp); "
                    "MLflow keeps such a point once: give it another step or timestamp"
                )
        seen.add(ident)
        if ident in inline_at:
            raise FileProblem(
                f"{reader.where(line)}: is also metrics[{inline_at[ident]}]; declare a point in metrics or "
                "in the file, not in both"
            )
        points[point["key"]] = points.get(point["key"], 0) + 1
    return Summary(path, reader.format, reader.logged(), points, reader.waiting)


def _first_line_of(path: str, point: Mapping[str, Any]) -> int | None:
    """The line of the first row that is ``point``: read again only to name a repeat (two rows that merely
    share a digest are no repeat: the first such row is then the row itself)."""
    wanted = [point.get(f) for f in FIELDS]
    return next((line for line, row in _Reader(path) if [row.get(f) for f in FIELDS] == wanted), None)


def still_holds(old_summary: Any, path: str) -> dict[str, Any] | None:
    """``old_summary`` where the file at ``path`` still holds exactly its complete rows (its first ``bytes`` hash
    to its ``sha256``, and no newline follows): the dynamic door's Check, which is not handed the engine's hash,
    then hashes the file instead of parsing it. ``waiting`` follows what is after the last newline now."""
    summary = Summary.of(old_summary)
    if summary is None or summary.path != path:
        return None
    if prefix_sha256(path, summary.complete.bytes) != summary.complete.sha256:
        return None
    waiting = False
    try:
        with open(path, "rb") as f:
            f.seek(summary.complete.bytes)
            while chunk := f.read(1 << 16):
                if b"\n" in chunk:
                    return None  # a row completed since: read the file
                waiting = waiting or bool(chunk.strip())
    except OSError:
        return None
    return Summary(summary.path, summary.format, summary.complete, summary.points, waiting).as_dict()


def same_file(old_summary: Any, path: str) -> bool:
    """Whether a stored summary is of ``path`` (Check may take it as it is when the file's hash is unchanged)."""
    summary = Summary.of(old_summary)
    return summary is not None and summary.path == path


# ---- Diff -------------------------------------------------------------------------------------------------


def prefix_sha256(path: str, size: int) -> str | None:
    """The sha256 of the file's first ``size`` bytes; None if it is shorter or cannot be read."""
    sha = hashlib.sha256()
    left = size
    try:
        with open(path, "rb") as f:
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    return None
                sha.update(chunk)
                left -= len(chunk)
    except OSError:
        return None
    return sha.hexdigest()


def verdict(logged_value: Any, summary_value: Any) -> Literal["update", "replace"] | None:
    """``None``, ``"update"`` (rows to log) or ``"replace"`` (logged rows changed or gone), from the logged
    part in state and Check's summary. Only a file that changed is read: the digest of its first logged bytes."""
    logged, summary = Logged.of(logged_value), Summary.of(summary_value)
    if summary is None:
        return "replace" if logged is not None and logged.rows else None
    if logged is None or logged.rows == 0:
        return "update" if summary.complete.rows else None
    if summary.complete == logged:
        return None
    if summary.complete.bytes < logged.bytes:
        return "replace"
    if summary.complete.bytes == logged.bytes:
        return "replace"  # as long, another digest: a logged row changed
    found = prefix_sha256(summary.path, logged.bytes)
    if found is None:
        return "update"  # unreadable now: the update names the problem
    return "update" if found == logged.sha256 else "replace"


def replace_reason(logged_value: Any, summary_value: Any) -> str:
    """Why ``verdict`` said replace, in the words a reviewer reads beside the preview."""
    logged, summary = Logged.of(logged_value), Summary.of(summary_value)
    rows = logged.rows if logged is not None else 0
    if summary is None:
        return f"metricsFile was removed, and the {rows} points logged from it cannot be: the run is replaced"
    return (
        f"{summary.path} no longer starts with the {rows} rows logged from it (a row changed or was removed), "
        "and logged points cannot change: the run is replaced"
    )


# ---- sending ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What the progress tag holds: how far the file is logged, the timestamp the append gives rows without one,
    and whether that append is still ``open`` (more rows of it to come).

    An append marks itself open before its first row without a timestamp (at the position it starts from) and
    in every batch but its last: MLflow writes a log-batch's points before its tags, so an append cut short,
    even right after its first points, leaves an open tag that says where to go on and with which timestamp."""

    logged: Logged
    stamp: int
    open: bool = False

    def tag_value(self) -> str:
        extra = {"open": 1} if self.open else {}
        return json.dumps({**self.logged.as_dict(), "stamp": self.stamp, **extra}, separators=(",", ":"))

    @staticmethod
    def of(tag_value: str | None) -> Progress | None:
        if not tag_value:
            return None
        try:
            value = json.loads(tag_value)
            logged = Logged.of(value)
            return None if logged is None else Progress(logged, int(value["stamp"]), bool(value.get("open")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def resume_point(path: str, logged: Logged | None, progress: Progress | None, now: int) -> tuple[Logged | None, int]:
    """Where sending starts and the timestamp for rows without one.

    The progress tag's position where it is not behind state and the file still starts with what it says: an
    append that went further than state knows (a kill, a failure), or one a refresh took in. Its timestamp where
    that append is still open; else ``now`` (a new append). Otherwise state's position and ``now``. Raises
    ``FileProblem`` when the file no longer starts with the rows state says are logged (Diff said so, unless
    state was behind the server)."""
    have = logged.bytes if logged is not None else 0
    if progress is not None and progress.logged.bytes >= have:
        at = progress.logged
        if prefix_sha256(path, at.bytes) == at.sha256:
            return at, (progress.stamp if progress.open else now)
    if logged is not None and logged.rows and prefix_sha256(path, logged.bytes) != logged.sha256:
        raise FileProblem(
            f"{path}: its first {logged.rows} rows are logged, and the file no longer starts with them; "
            "logged points cannot change: restore them, or replace the run (`pulumi up --replace <urn>`)"
        )
    return logged, now


MLFLOW3_FIELDS = ("model_id", "dataset_name", "dataset_digest")
"""A point's fields that only MLflow 3 servers keep (a 2.x server drops them without a word)."""


@dataclass(frozen=True)
class Batch:
    points: list[dict[str, Any]]
    """Each with a timestamp: its own, or the append's ``stamp``; in wire form (the log-batch's ``metrics``)."""
    progress: Progress
    """How far the file is logged once this batch is (``open`` but for the append's last batch)."""
    stamped: bool
    """Whether a row of it had no timestamp (and got the append's)."""
    mlflow3_field: str | None = None
    """The first of ``MLFLOW3_FIELDS`` in the first point that has one: noted while reading, so the sender
    asks the server's version only then, without looking through every point again."""
    size: int = 0
    """At least the bytes of its points in JSON (what ``BATCH_BYTES`` bounds)."""


def batches(path: str, start: Logged | None, stamp: int, *, rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """The rows after ``start``, ``rows`` at a time, each with a timestamp (``stamp`` where the row has none),
    with the progress each batch reaches. Read as they are sent, one batch ahead (to know the last): memory
    stays flat in the file's length."""
    reader = _Reader(path, start)
    points: list[dict[str, Any]] = []
    stamped = False
    field: str | None = None
    size = 0
    ready: Batch | None = None
    for _, point in reader:
        if "timestamp" not in point:
            point["timestamp"] = stamp
            stamped = True
        points.append(point)
        size += 120 + 6 * len(point["key"])
        if len(point) > 4:  # dataset or model fields
            size += 6 * sum(len(v) for k, v in point.items() if k != "key" and type(v) is str)
            field = field or next(f for f in MLFLOW3_FIELDS if f in point)
        if len(points) == rows or size > BATCH_BYTES:
            if ready is not None:
                yield ready
            ready = Batch(points, Progress(reader.logged(), stamp, open=True), stamped, field, size)
            points, stamped, field, size = [], False, None, 0
    if points:
        if ready is not None:
            yield ready
        ready = Batch(points, Progress(reader.logged(), stamp, open=True), stamped, field, size)
    if ready is not None:
        yield replace(ready, progress=Progress(ready.progress.logged, stamp))


def logged_rows(path: str, upto: Logged | None = None) -> Iterator[dict[str, Any]]:
    """The points of the file's first ``upto.rows`` rows (every complete row without ``upto``), without a
    timestamp where the row has none: to tell a file's points from the other points a run holds."""
    reader = _Reader(path)
    for _, point in reader:
        if upto is not None and reader.rows > upto.rows:
            return
        yield point
