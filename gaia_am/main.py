"""`gaia am`: the entry point a node runs as an application's first container."""
import os

from gaia_common.client import MasterClient
from gaia_common.daemon import setup_logging
from gaia_am.am import ApplicationMaster


def run(app_id: str, attempt: int, cluster: str = None):
    cluster = cluster or os.environ["GAIA_CLUSTER"]
    # the node gave the AM its id; every line of the AM is about its app
    setup_logging("am", cluster=cluster, node=os.environ.get("GAIA_NODE_ID"), app=app_id)
    endpoints = [e for e in os.environ.get("GAIA_ETCD_ENDPOINTS", "").split(",") if e]
    masters = [m for m in os.environ.get("GAIA_MASTERS", "").split(",") if m]
    # The AM outlives master failovers: it keeps retrying for a long time.
    client = MasterClient(cluster, etcd_endpoints=endpoints or None, masters=masters, retry_for=300)
    try:
        ApplicationMaster(client, app_id, attempt).run()
    finally:
        client.close()
