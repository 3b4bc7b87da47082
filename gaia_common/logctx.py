"""Structured log lines: who logs (daemon, cluster, node or master) and what about (app,
instance, container) on every record, as `key=value` text or one JSON object a line.

Process-wide fields are a plain dict, not a context variable: a new thread starts with an
empty context, and the daemons log from many threads. Per-operation fields (`log_context`)
are context variables, so concurrent gRPC calls about different apps do not mix. A log call
may also pass them itself: `log.info(..., extra={"instance": "3"})`.
"""
import contextlib
import contextvars
import datetime
import json
import logging

FIELDS = ("cluster", "master", "node", "app", "instance", "container")
FORMATS = ("text", "json")

_process: dict = {}
_local = contextvars.ContextVar("gaia_log_fields", default={})


def set_process_fields(**fields) -> None:
    """Fields every line of this process carries (set by the daemon's entry point)."""
    _process.update({k: str(v) for k, v in fields.items() if v not in (None, "")})


@contextlib.contextmanager
def log_context(**fields):
    """Lines logged inside (in this thread or task) carry `fields`."""
    token = _local.set({**_local.get(), **{k: str(v) for k, v in fields.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _local.reset(token)


def record_fields(record: logging.LogRecord) -> dict:
    """The record's fields: `extra=` of the call, else the context, else the process's."""
    local, out = _local.get(), {}
    for name in FIELDS:
        value = getattr(record, name, None) or local.get(name) or _process.get(name)
        if value:
            out[name] = str(value)
    return out


def _quoted(value: str) -> str:
    return json.dumps(value) if (not value or any(c in value for c in ' "=')) else value


class TextFormatter(logging.Formatter):
    """`time level daemon[pid] logger: message key=value ...`, the traceback (if any) after."""

    def __init__(self, daemon: str):
        super().__init__(f"%(asctime)s %(levelname)s {daemon}[%(process)d] %(name)s: %(message)s")

    def formatMessage(self, record) -> str:
        pairs = " ".join(f"{k}={_quoted(v)}" for k, v in record_fields(record).items())
        line = super().formatMessage(record)
        return f"{line} {pairs}" if pairs else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, daemon, pid, logger, message,
    the fields, and `exception` with the traceback."""

    def __init__(self, daemon: str):
        super().__init__()
        self.daemon = daemon

    def format(self, record) -> str:
        doc = {"time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
               .isoformat(timespec="milliseconds"),
               "level": record.levelname, "daemon": self.daemon, "pid": record.process,
               "logger": record.name, "message": record.getMessage(), **record_fields(record)}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def formatter(daemon: str, fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    return JsonFormatter(daemon) if fmt == "json" else TextFormatter(daemon)
