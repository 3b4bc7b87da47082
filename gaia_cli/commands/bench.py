"""gaia bench <what>: run a benchmark of gaia_cli/bench/ and print its figures.

The benchmarks are imported only when run (they need numpy, and start clusters of their own).
"""
import click

from gaia_cli.commands.daemons import entry_point
from gaia_cli.output import emit, flatten, output_option, render_fields


@click.command()
@click.option("--kills", type=click.IntRange(min=1), default=10, show_default=True, help="Leaders to kill.")
@click.option("--masters", type=click.IntRange(min=2), default=3, show_default=True, help="Master replicas.")
@click.option("--lease-ttl", type=click.IntRange(min=1), default=2, show_default=True, metavar="SECONDS",
              help="The masters' lease TTL.")
@output_option
def failover(kills, masters, lease_ttl, fmt):
    """Kill -9 the leading master KILLS times under a stream of submits: failover time, lost and duplicated apps."""
    figures = entry_point("gaia_cli.bench.failover")(kills=kills, masters=masters, lease_ttl=lease_ttl)
    emit(fmt, figures, lambda f: render_fields(flatten(f)))


@click.command()
@click.option("--only", "sections", multiple=True, type=click.Choice(["start", "memory", "network", "disk"]),
              help="Run only these sections (repeatable). Default: all.")
@output_option
def node(sections, fmt):
    """Node manager figures: start latency (Gaia vs the bare driver), EMC kills vs hard limits,
    bandwidth and disk IO accuracy per limit."""
    figures = entry_point("gaia_cli.bench.node")(sections=list(sections) or None)
    emit(fmt, figures, lambda f: render_fields(flatten(f)))


@click.command()
@click.option("--nodes", type=click.IntRange(min=10), default=1000, show_default=True, help="Hollow nodes.")
@click.option("--pools", type=click.IntRange(min=1), default=100, show_default=True, help="Resource pools (a two-level tree).")
@click.option("--workload", type=click.Choice(["c1m", "mixed"]), default="c1m", show_default=True,
              help="c1m: apps of --instances identical instances, at most 2 per node; mixed: single instances of random shapes.")
@click.option("--instances", type=click.IntRange(min=1), default=1000, show_default=True, help="Instances per c1m app.")
@click.option("--demand", type=click.FloatRange(min=0.01), default=1.25, show_default=True,
              help="Total ask as a multiple of the cluster's cpu (above 1 saturates it).")
@click.option("--churn", type=click.IntRange(min=1), default=None, help="Hollow nodes that leave (and as many join) mid-run. Default: 2%.")
@click.option("--node-cpu", type=click.IntRange(min=1), default=32, show_default=True, help="Cores per hollow node.")
@click.option("--max-apps", type=click.IntRange(min=1), default=20000, show_default=True, help="At most this many apps.")
@output_option
def scheduler(nodes, pools, workload, instances, demand, churn, node_cpu, max_apps, fmt):
    """Sfair on a real leader and etcd with hollow nodes: placements/s (scheduler only, end to end,
    the etcd ceiling), decision latency, utilisation, DRF deviation; every grant checked from etcd."""
    figures = entry_point("gaia_cli.bench.scheduler")(nodes=nodes, pools=pools, workload=workload, instances=instances,
                                                       demand=demand, churn=churn, node_cpu=node_cpu, max_apps=max_apps)
    emit(fmt, figures, lambda f: render_fields(flatten(f)))


@click.command()
@click.option("--sizes", default="10,100,1000", show_default=True, metavar="K,K,...",
              help="Instances on the lost node, one run per size.")
@click.option("--lease-ttl", type=click.IntRange(min=1), default=3, show_default=True, metavar="SECONDS",
              help="The hollow nodes' lease TTL.")
@click.option("--rollout", type=click.IntRange(min=0), default=100, show_default=True,
              help="Instances of the rolling-update run (0: skip it).")
@click.option("--batch", type=click.IntRange(min=1), default=10, show_default=True,
              help="The rolling update's max_unavailable.")
@output_option
def recovery(sizes, lease_ttl, rollout, batch, fmt):
    """Kill -9 a (hollow) node holding K instances: seconds until all run elsewhere, per K;
    then a rolling update: total time and peak unavailable instances."""
    try:
        ks = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of instance counts", param_hint="--sizes") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter("each size must be at least 1", param_hint="--sizes")
    figures = entry_point("gaia_cli.bench.recovery")(sizes=ks, lease_ttl=lease_ttl, rollout=rollout, batch=batch)
    emit(fmt, figures, lambda f: render_table_runs(f))


def render_table_runs(figures: dict) -> str:
    from gaia_cli.output import render_table
    cols = ["instances", "detect_s", "placed_s", "recover_s", "after_detect_s", "within_target", "moved", "charged"]
    head = f"node lease TTL {figures['lease_ttl_s']}s, target: recovered within {figures['target_s']}s\n"
    out = head + render_table([c.upper() for c in cols], [[r[c] for c in cols] for r in figures["runs"]])
    if figures.get("rolling_update"):
        out += "\n\nrolling update\n" + render_fields(flatten(figures["rolling_update"]))
    return out


@click.command()
@click.option("--apps", type=click.IntRange(min=1), default=100, show_default=True, help="Apps in the registry.")
@click.option("--instances", type=click.IntRange(min=1), default=10, show_default=True, help="Instances per app.")
@click.option("--seconds", type=click.IntRange(min=1), default=10, show_default=True,
              help="Length of each dnsperf run.")
@click.option("--rate", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Queries per second of the latency run (dnsperf -Q).")
@click.option("--samples", type=click.IntRange(min=1), default=200, show_default=True,
              help="Registry changes timed until they show in DNS (each way).")
@output_option
def dns(apps, instances, seconds, rate, samples, fmt):
    """gaia dns on a private etcd: max qps and p99 latency at a fixed rate (dnsperf), and how
    long a registry entry takes to appear in DNS and to leave it (delete, lease revoked)."""
    figures = entry_point("gaia_cli.bench.dns")(apps=apps, instances=instances, seconds=seconds, rate=rate,
                                                 samples=samples)
    emit(fmt, figures, render_dns)
    if figures.get("missing"):   # what could be measured is printed; the run still failed its purpose
        from gaia_cli.errors import CliError
        raise CliError("dnsperf is not installed (Debian: apt-get install dnsperf): throughput and latency "
                       "were not measured")


def render_dns(figures: dict) -> str:
    from gaia_cli.output import render_table
    rows = [[r["figure"], r["measured"], r["target"], r["met"]] for r in figures["table"]]
    out = render_table(["FIGURE", "MEASURED", "TARGET", "MET"], rows)
    notes = figures.get("notes") or []
    return out + "".join(f"\n{note}" for note in notes)


@click.command()
@click.option("--seconds", type=click.FloatRange(min=1), default=20, show_default=True,
              help="Length of each real-GPU training run.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs per real-GPU figure (the median is reported).")
@click.option("--python", default="", metavar="PATH", help="The interpreter with torch for the real-GPU runs "
                                                           "(default: this one).")
@click.option("--gpu", type=click.IntRange(min=0), default=0, show_default=True, help="The GPU (NVML index) to use.")
@output_option
def vcuda(seconds, repeats, python, gpu, fmt):
    """The vCUDA interposer: per-call overhead and share accuracy on the fake driver; on a real
    GPU with PyTorch, step overhead at share 100, 30/70 and 10/90 splits and an allocation
    past the memory limit (reported as unmeasured where there is no GPU)."""
    figures = entry_point("gaia_cli.bench.vcuda")(seconds=seconds, repeats=repeats, python=python, gpu=gpu)
    from gaia_cli.bench.vcuda import render
    emit(fmt, figures, render)


@click.command("tls")
@click.option("--submits", type=click.IntRange(min=1), default=200, show_default=True,
              help="Submits timed per mode (plaintext, mTLS) and channel kind (reused, new).")
@click.option("--starts", type=click.IntRange(min=1), default=30, show_default=True,
              help="Container starts timed per mode and channel kind.")
@click.option("--no-fuzz", "no_fuzz", is_flag=True, help="Skip the fuzz run of the request validators.")
@output_option
def tls(submits, starts, no_fuzz, fmt):
    """The cost of mutual TLS: submit and container-start latency with and without it, on
    reused and on new channels (target: under 10% extra on reused ones); the fuzz run's figures."""
    figures = entry_point("gaia_cli.bench.tls")(submits=submits, starts=starts, fuzz=not no_fuzz)
    from gaia_cli.bench.tls import render
    emit(fmt, figures, render)
