"""`gaia am`: the entry point a node runs as an application's first container."""
import os

from gaia_common import etcd_auth, rpc
from gaia_common.client import MasterClient
from gaia_common.daemon import setup_logging
from gaia_common.security.tls import TlsFiles
from gaia_am.am import ApplicationMaster


def run(app_id: str, attempt: int, cluster: str = None):
    cluster = cluster or os.environ["GAIA_CLUSTER"]
    # the node gave the AM its id; every line of the AM is about its app
    setup_logging("am", cluster=cluster, node=os.environ.get("GAIA_NODE_ID"), app=app_id)
    # TLS on: the node wrote this attempt's certificate to GAIA_TLS_DIR; every call uses it
    tls = TlsFiles.from_env()
    rpc.configure(tls)
    endpoints = [e for e in os.environ.get("GAIA_ETCD_ENDPOINTS", "").split(",") if e]
    masters = [m for m in os.environ.get("GAIA_MASTERS", "").split(",") if m]
    # The AM outlives master failovers: it keeps retrying for a long time.
    client = MasterClient(cluster, etcd_endpoints=endpoints or None, masters=masters, retry_for=300,
                          etcd_options=etcd_options(tls))
    try:
        ApplicationMaster(client, app_id, attempt).run()
    finally:
        client.close()


def etcd_options(tls) -> dict:
    """etcd RBAC: the client login its master gave it (it reads masters/ only); https etcd: the
    cluster CA and this AM's own certificate (etcd's members are signed by the cluster CA)."""
    options = {}
    if os.environ.get(etcd_auth.AM_USER_ENV):
        options.update(user=os.environ[etcd_auth.AM_USER_ENV], password=os.environ.get(etcd_auth.AM_PASSWORD_ENV))
    if tls is not None:
        options.update(ca_file=tls.ca, cert_file=tls.cert or None, key_file=tls.key or None)
    return options
