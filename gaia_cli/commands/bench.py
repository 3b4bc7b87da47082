"""gaia bench <what>: run a benchmark of gaia_cli/bench/ and print its figures.

The benchmarks are imported only when run (they need numpy, and start clusters of their own).
"""
import click

from gaia_cli.commands.daemons import entry_point
from gaia_cli.output import emit, output_option, render_fields


def _flatten(figures: dict, prefix: str = "") -> list:
    pairs = []
    for key, value in figures.items():
        if isinstance(value, dict):
            pairs += _flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


@click.command()
@click.option("--kills", type=click.IntRange(min=1), default=10, show_default=True, help="Leaders to kill.")
@click.option("--masters", type=click.IntRange(min=2), default=3, show_default=True, help="Master replicas.")
@click.option("--lease-ttl", type=click.IntRange(min=1), default=2, show_default=True, metavar="SECONDS",
              help="The masters' lease TTL.")
@output_option
def failover(kills, masters, lease_ttl, fmt):
    """Kill -9 the leading master KILLS times under a stream of submits: failover time, lost and duplicated apps."""
    figures = entry_point("gaia_cli.bench.failover")(kills=kills, masters=masters, lease_ttl=lease_ttl)
    emit(fmt, figures, lambda f: render_fields(_flatten(f)))


@click.command()
@click.option("--only", "sections", multiple=True, type=click.Choice(["start", "memory", "network", "disk"]),
              help="Run only these sections (repeatable). Default: all.")
@output_option
def node(sections, fmt):
    """Node manager figures: start latency (Gaia vs the bare driver), EMC kills vs hard limits,
    bandwidth and disk IO accuracy per limit."""
    figures = entry_point("gaia_cli.bench.node")(sections=list(sections) or None)
    emit(fmt, figures, lambda f: render_fields(_flatten(f)))
