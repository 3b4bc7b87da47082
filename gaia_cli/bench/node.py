"""`gaia bench node`: the node manager's figures, side by side in one run.

Each section lives in its own module (the code that knows how to measure it) and returns a
dict; a section that cannot run here (no Docker engine, no permission for tc) reports why
instead of sinking the others.
"""
import importlib

SECTIONS = {
    "start": ("gaia_cli.bench.node_start", "start_latency_figures"),     # Gaia vs driver start latency
    "memory": ("gaia_cli.bench.node_memory", "emc_figures"),             # kills: EMC vs hard limits
    "network": ("gaia_cli.bench.node_network", "bandwidth_figures"),     # bandwidth accuracy per limit
    "disk": ("gaia_cli.bench.node_disk", "disk_figures"),                # disk IO accuracy per limit
}


def run(sections=None) -> dict:
    figures = {}
    for name in sections or SECTIONS:
        module, function = SECTIONS[name]
        try:
            figures[name] = getattr(importlib.import_module(module), function)()
        except Exception as e:  # reported, not raised: the other sections still count
            figures[name] = {"error": f"{type(e).__name__}: {e}"}
    return figures
