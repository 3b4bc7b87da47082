"""gaia cluster add / list / use / remove: cluster names in the client config.

The file (~/.gaia/config.yaml, or $GAIA_CONFIG) maps a cluster name to how to reach it:
    current: prod
    clusters:
      prod:
        etcd: [https://10.0.0.1:2379, https://10.0.0.2:2379]   # to find the masters
        masters: [10.0.0.5:7070]                                # used when etcd is not given
        tls: {ca: /path/ca.pem, cert: /path/me.pem, key: /path/me-key.pem}
        etcd_user: gaia-prod-client                             # etcd RBAC: reads masters/ only
        etcd_password_file: /path/client.password
        etcd_tls: {ca: /path/ca.pem}                            # https:// etcd (cert/key if it asks)
"""
import os

import click

from gaia_common import config
from gaia_common.etcd import parse_endpoint
from gaia_common.keys import valid_cluster_name
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError
from gaia_cli.output import emit, output_option, render_table


def _split(values) -> list:
    """Repeated and/or comma-separated option values, in order, without empties."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@click.command()
@click.argument("name")
@click.option("--etcd", "etcd_urls", multiple=True, metavar="URL[,URL]", help="etcd endpoints (repeatable).")
@click.option("--master", "masters", multiple=True, metavar="HOST:PORT",
              help="Master addresses, used when no etcd is given (repeatable).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="CA certificate (PEM).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Client key (PEM).")
@click.option("--etcd-user", help="etcd RBAC user to find the masters as (gaia-<cluster>-client).")
@click.option("--etcd-password-file", type=click.Path(exists=True, dir_okay=False), help="Its password.")
@click.option("--etcd-ca", type=click.Path(exists=True, dir_okay=False), help="CA of https:// etcd members.")
@click.option("--etcd-cert", type=click.Path(exists=True, dir_okay=False),
              help="Client certificate for etcd (with --etcd-key; where etcd asks for one).")
@click.option("--etcd-key", type=click.Path(exists=True, dir_okay=False), help="Its key.")
@click.option("--use/--no-use", default=None, help="Make it the current cluster (default: when none is).")
def add(name, etcd_urls, masters, ca, cert, key, etcd_user, etcd_password_file, etcd_ca, etcd_cert, etcd_key,
        use):
    """Add (or replace) cluster NAME in the client config."""
    if not valid_cluster_name(name):
        raise CliError(f"cluster name {name!r}: use lowercase letters, digits and '-'", EXIT_BAD_REQUEST)
    etcd, masters = _split(etcd_urls), _split(masters)
    if not etcd and not masters:
        raise CliError("give --etcd (to find the masters) or --master addresses", EXIT_BAD_REQUEST)
    for url in etcd:
        try:
            parse_endpoint(url)
        except ValueError as e:
            raise CliError(str(e), EXIT_BAD_REQUEST) from None
    if bool(cert) != bool(key):
        raise CliError("--cert and --key go together", EXIT_BAD_REQUEST)
    entry = {}
    if etcd:
        entry["etcd"] = etcd
    if masters:
        entry["masters"] = masters
    tls = {k: os.path.abspath(v) for k, v in (("ca", ca), ("cert", cert), ("key", key)) if v}
    if tls:
        entry["tls"] = tls
    entry.update(_etcd_login(etcd_user, etcd_password_file, etcd_ca, etcd_cert, etcd_key))
    doc = config.load_client_config()
    existed = name in doc["clusters"]
    doc["clusters"][name] = entry
    if use or (use is None and not doc["current"]):
        doc["current"] = name
    config.save_client_config(doc)
    click.echo(f"{'updated' if existed else 'added'} cluster {name}"
               + (" (current)" if doc["current"] == name else ""))


def _etcd_login(user, password_file, ca, cert, key) -> dict:
    """The entry's etcd_user/etcd_password_file and etcd_tls (gaia_common.client.etcd_options)."""
    if bool(user) != bool(password_file):
        raise CliError("--etcd-user and --etcd-password-file go together", EXIT_BAD_REQUEST)
    if bool(cert) != bool(key):
        raise CliError("--etcd-cert and --etcd-key go together", EXIT_BAD_REQUEST)
    out = {"etcd_user": user, "etcd_password_file": os.path.abspath(password_file)} if user else {}
    tls = {k: os.path.abspath(v) for k, v in (("ca", ca), ("cert", cert), ("key", key)) if v}
    if tls:
        out["etcd_tls"] = tls
    return out


def render_clusters(doc: dict) -> str:
    rows = [["*" if name == doc["current"] else "", name, ",".join(e.get("etcd", [])) or "-",
             ",".join(e.get("masters", [])) or "-"] for name, e in sorted(doc["clusters"].items())]
    return render_table(["CURRENT", "NAME", "ETCD", "MASTERS"], rows)


@click.command("list")
@output_option
def list_clusters(fmt):
    """List the clusters of the client config; * marks the current one."""
    doc = config.load_client_config()
    emit(fmt, {"current": doc["current"], "clusters": doc["clusters"]}, render_clusters)


@click.command()
@click.argument("name")
def use(name):
    """Make NAME the current cluster."""
    config.cluster_entry(name)  # an unknown name is an error that names the known ones
    doc = config.load_client_config()
    doc["current"] = name
    config.save_client_config(doc)
    click.echo(f"current cluster: {name}")


@click.command()
@click.argument("name")
def remove(name):
    """Forget cluster NAME (the cluster itself is untouched)."""
    config.cluster_entry(name)  # an unknown name is an error that names the known ones
    doc = config.load_client_config()
    del doc["clusters"][name]
    if doc["current"] == name:
        doc["current"] = ""
    config.save_client_config(doc)
    click.echo(f"removed cluster {name}")
