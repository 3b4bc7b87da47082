"""Which cluster a command talks to, and the client for it.

The cluster is `--cluster NAME` on the `gaia` group, else $GAIA_CLUSTER, else the client
config's `current`. The client is made on first use, so commands that need no cluster
(`gaia cluster ...`, `gaia dev`) never read it, and closed when the command ends.
"""
import os

import click

from gaia_common import config
from gaia_common.client import MasterClient
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError

CLUSTER_ENV = "GAIA_CLUSTER"


class Context:
    def __init__(self, cluster_option: str = None, retry_for: float = 30.0):
        self.cluster_option = cluster_option
        self.retry_for = retry_for
        self._client = None

    def cluster_name(self) -> str:
        name = self.cluster_option or os.environ.get(CLUSTER_ENV) or config.load_client_config()["current"]
        if not name:
            raise CliError("no cluster chosen: pass --cluster NAME, set $GAIA_CLUSTER, "
                           "or run `gaia cluster use NAME`", EXIT_BAD_REQUEST)
        return name

    def client(self) -> MasterClient:
        if self._client is None:
            name = self.cluster_name()
            try:
                self._client = MasterClient.for_cluster(name, retry_for=self.retry_for)
            except ValueError as e:  # ConfigError (unknown cluster) or a malformed endpoint
                raise CliError(str(e) if isinstance(e, config.ConfigError) else f"cluster {name!r}: {e}",
                               EXIT_BAD_REQUEST) from None
        return self._client

    def call(self, method: str, request):
        """`method` on the cluster's leading master (following failovers)."""
        return self.client().call(method, request)

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None


pass_context = click.make_pass_decorator(Context)
