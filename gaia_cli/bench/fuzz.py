"""The hostile-input fuzz run's figures for `gaia bench tls` (gaia_common/fuzz_specs.py):
hypothesis-drawn requests against the validators in-process and the leader's handlers over
gRPC (a private etcd, an in-process master); every answer must be success or INVALID_ARGUMENT."""


def figures(examples: int = None, etcd_endpoint: str = None) -> dict:
    """{"executions", "failures", "seconds", "examples", "failing"}; `examples` per target
    (default GAIA_FUZZ_EXAMPLES, else 300)."""
    from gaia_common import fuzz_specs   # hypothesis, the master: only when the fuzz runs
    return fuzz_specs.run_fuzz(examples, etcd_endpoint=etcd_endpoint)
