"""gaia pool create/update/delete/list: the resource pool tree, kept by the leading master."""
import pathlib
import sys

import click

from gaia_common import quantity, spec as spec_mod
from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.context import pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError

FORMATS = {"cpu_millis": ("cpu", quantity.format_cpu), "memory_bytes": ("memory", quantity.format_bytes),
           "disk_bytes": ("disk", quantity.format_bytes), "net_in_bps": ("net_in", str),
           "net_out_bps": ("net_out", str), "disk_read_bps": ("disk_read", quantity.format_bytes),
           "disk_write_bps": ("disk_write", quantity.format_bytes), "gpu_share": ("gpu_share", str),
           "gpu_memory_bytes": ("gpu_memory", quantity.format_bytes)}


def _amounts(pairs: str, option: str) -> dict:
    """'cpu=4,memory=8Gi' -> {'cpu': '4', 'memory': '8Gi'}."""
    out = {}
    for pair in filter(None, (pairs or "").split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option} {pair!r}: expected RESOURCE=AMOUNT[,...]", EXIT_BAD_REQUEST)
        out[key.strip()] = value.strip()
    return out


def read_pool(path, flags: dict):
    """The validated Pool from FILE ('-': stdin) or from the flags, never both."""
    given = {k: v for k, v in flags.items() if v not in (None, (), "")}
    if path and given:
        raise CliError(f"give a FILE or flags, not both (flags: {', '.join(sorted(given))})", EXIT_BAD_REQUEST)
    try:
        if path:
            try:
                text = sys.stdin.read() if path == "-" else pathlib.Path(path).read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(f"{path}: {e}", EXIT_BAD_REQUEST) from None
            return spec_mod.load_pool_yaml(text)
        if not given.get("path"):
            raise CliError("give a pool FILE, or at least --path", EXIT_BAD_REQUEST)
        doc = {"path": given["path"]}
        if "weight" in given:
            doc["weight"] = given["weight"]
        for name in ("min", "max"):
            if name in given:
                doc[name] = _amounts(given[name], f"--{name}")
        if "gpu_models" in given:
            doc["gpu_models"] = list(given["gpu_models"])
        if "max_gpus" in given:
            doc["max_gpus"] = given["max_gpus"]
        if "tenant" in given:
            doc["tenant"] = given["tenant"]
        return spec_mod.pool_from_dict(doc)
    except spec_mod.SpecError as e:
        raise CliError(f"{path or 'pool'}: {e.field}: {e.problem}", EXIT_BAD_REQUEST) from None


def amounts(r) -> str:
    parts = [f"{name}={fmt(getattr(r, attr))}" for attr, (name, fmt) in FORMATS.items() if getattr(r, attr)]
    return ",".join(parts) or "-"


def render_pools(response: master_pb2.ListPoolsResponse) -> str:
    rows = [[p.path, f"{p.weight:g}", amounts(p.min), amounts(p.max), ",".join(p.gpu_models) or "any",
             p.max_gpus or "-", p.tenant or "-"] for p in response.pools]
    return output.render_table(["POOL", "WEIGHT", "MIN", "MAX", "GPU_MODELS", "MAX_GPUS", "TENANT"], rows)


def render_pool(p) -> str:
    return output.render_fields([("Pool", p.path), ("Weight", f"{p.weight:g}"), ("Min", amounts(p.min)),
                                 ("Max", amounts(p.max)), ("GPU models", ", ".join(p.gpu_models) or "any"),
                                 ("Max GPUs", p.max_gpus or "-"), ("Tenant", p.tenant or "-")])


def pool_options(command):
    for option in reversed([
        click.argument("pool_file", metavar="[FILE]", required=False),
        click.option("--path", help="The pool's path, e.g. ads/ranking/online."),
        click.option("--weight", type=float, help="Share among its siblings (> 0; default 1)."),
        click.option("--min", "min_", metavar="RES=AMOUNT,...", help="Guaranteed minimum, e.g. cpu=8,memory=32Gi."),
        click.option("--max", "max_", metavar="RES=AMOUNT,...", help="Ceiling, e.g. cpu=64."),
        click.option("--gpu-model", "gpu_models", multiple=True, help="Allowed GPU model (repeatable; default any)."),
        click.option("--max-gpus", type=click.IntRange(min=0), help="Whole GPUs the pool may hold (0: no ceiling)."),
        click.option("--tenant", help="The tenant that owns it and its subtree (default: its parent's)."),
        output.output_option,
    ]):
        command = option(command)
    return command


def _send(ctx, method, pool_file, path, weight, min_, max_, gpu_models, max_gpus, tenant, fmt):
    pool = read_pool(pool_file, {"path": path, "weight": weight, "min": min_, "max": max_,
                                 "gpu_models": gpu_models, "max_gpus": max_gpus, "tenant": tenant})
    output.emit(fmt, ctx.call(method, master_pb2.PoolRequest(pool=pool)), render_pool)


@click.command()
@pool_options
@pass_context
def create(ctx, pool_file, path, weight, min_, max_, gpu_models, max_gpus, tenant, fmt):
    """Create a pool from FILE (YAML; '-' reads stdin) or from the flags."""
    _send(ctx, "CreatePool", pool_file, path, weight, min_, max_, gpu_models, max_gpus, tenant, fmt)


@click.command()
@pool_options
@pass_context
def update(ctx, pool_file, path, weight, min_, max_, gpu_models, max_gpus, tenant, fmt):
    """Replace a pool's settings with FILE's (or the flags'); unset fields become defaults."""
    _send(ctx, "UpdatePool", pool_file, path, weight, min_, max_, gpu_models, max_gpus, tenant, fmt)


@click.command()
@click.argument("path", metavar="PATH")
@output.output_option
@pass_context
def delete(ctx, path, fmt):
    """Delete a pool that has no child pools and no active apps."""
    output.emit(fmt, ctx.call("DeletePool", master_pb2.DeletePoolRequest(path=path)), lambda p: f"deleted {p.path}")


@click.command("list")
@output.output_option
@pass_context
def list_pools(ctx, fmt):
    """List the pools by path (`default` is always there)."""
    output.emit(fmt, ctx.call("ListPools", master_pb2.ListPoolsRequest()), render_pools)
