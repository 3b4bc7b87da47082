"""The one output convention of every read command: `-o table` (default) or `-o json`.

JSON is the response message through protobuf's JSON mapping with the .proto field names,
every scalar, list and map field present even when empty (so keys do not come and go with
values), unset sub-messages absent, enums as their names, int64 as strings. A command
without a response message prints a small dict documented in docs/cli.md.
"""
import datetime
import json
import time

import click
from google.protobuf import json_format
from google.protobuf.message import Message

from gaia_common import quantity
from gaia_common.pb import types_pb2

FORMATS = ("table", "json")


def output_option(command):
    return click.option("-o", "--output", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="Output format.")(command)


def to_dict(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def emit(fmt: str, value, table):
    """Print `value` (a message or a plain dict) as JSON, or `table(value)` (a str) as text."""
    if fmt == "json":
        doc = to_dict(value) if isinstance(value, Message) else value
        click.echo(json.dumps(doc, indent=2))
    else:
        text = table(value)
        if text:
            click.echo(text)


def render_table(headers, rows) -> str:
    """Left-aligned columns separated by two spaces; header row first."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def render_fields(pairs) -> str:
    """`Key:  value` lines for one object's details."""
    width = max((len(k) for k, _ in pairs), default=0) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {v}" for k, v in pairs)


def flatten(figures: dict, prefix: str = "") -> list:
    """Nested dicts as (dotted.key, value) pairs, for render_fields: {"a": {"b": 1}} -> [("a.b", 1)]."""
    pairs = []
    for key, value in figures.items():
        if isinstance(value, dict):
            pairs += flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


# ---- value formatting shared by the tables ----

def enum_name(enum_type, value: int) -> str:
    """APP_STATE_RUNNING -> running; 0 -> '-'."""
    if not value:
        return "-"
    prefix = enum_type.Name(0).removesuffix("UNSPECIFIED")  # APP_STATE_UNSPECIFIED -> APP_STATE_
    try:
        return enum_type.Name(value).removeprefix(prefix).lower()
    except ValueError:  # a value newer than this CLI
        return str(value)


def app_state(value: int) -> str:
    return enum_name(types_pb2.AppState, value)


def container_state(value: int) -> str:
    return enum_name(types_pb2.ContainerState, value)


def resources_brief(r: types_pb2.Resources) -> str:
    parts = [f"cpu={quantity.format_cpu(r.cpu_millis)}", f"mem={quantity.format_bytes(r.memory_bytes)}"]
    if r.disk_bytes:
        parts.append(f"disk={quantity.format_bytes(r.disk_bytes)}")
    if r.gpu_share or r.gpu_memory_bytes:
        parts.append(f"gpu={r.gpu_share}%/{quantity.format_bytes(r.gpu_memory_bytes)}")
    return " ".join(parts)


def endpoint_address(host: str, ports, only: str = "") -> str:
    """host:port when one port is meant, else name=host:port,...; '-' without ports."""
    if only:
        return f"{host}:{ports[only]}" if only in ports else "-"
    if len(ports) == 1:
        return f"{host}:{next(iter(ports.values()))}"
    return ",".join(f"{name}={host}:{port}" for name, port in sorted(ports.items())) or (host or "-")


def age(unix_seconds: float, now: float = None) -> str:
    if not unix_seconds:
        return "-"
    seconds = max(0, int((now or time.time()) - unix_seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timestamp(unix_seconds: float) -> str:
    if not unix_seconds:
        return "-"
    return datetime.datetime.fromtimestamp(unix_seconds).strftime("%Y-%m-%d %H:%M:%S")
