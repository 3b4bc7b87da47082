"""gaia node token create / gaia node join / gaia etcd setup: bringing machines in safely.

`token create` asks the leader for a one-time bootstrap token (cluster admins only); `join`
trades it on a new machine for the node's certificate and etcd credential (gaia_cli/join.py);
`etcd setup` makes the cluster's etcd roles and users and turns etcd authentication on
(gaia_common/etcd_auth.py), with root credentials.
"""
import datetime
import pathlib
import socket
import time

import click

from gaia_common import etcd as etcd_mod, etcd_auth
from gaia_common.keys import valid_cluster_name
from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.context import pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError


@click.command("create")
@click.option("--ttl", type=click.FloatRange(min=1), metavar="SECONDS",
              help="How long the token is good for (default: the master's, 15 minutes; at most a week).")
@click.option("--node", "node_id", metavar="ID", help="Good for this node id only.")
@output.output_option
@pass_context
def token_create(ctx, ttl, node_id, fmt):
    """Make a one-time bootstrap token for `gaia node join` (cluster admins only).

    Only its hash is kept: the token is shown once, here."""
    token = ctx.call("CreateJoinToken", master_pb2.JoinTokenRequest(ttl_seconds=ttl or 0, node_id=node_id or ""))

    def render(t):
        expires = datetime.datetime.fromtimestamp(t.expires_unix).astimezone().isoformat(timespec="seconds")
        return f"{t.token}\nexpires {expires}" + (f", for node {node_id}" if node_id else "")
    output.emit(fmt, token, render)


@click.command("join")
@click.option("--cluster", help="The cluster to join (default: gaia --cluster).")
@click.option("--master", "masters", required=True, multiple=True, metavar="HOST:PORT",
              help="A master's enrolment port (its join_listen). Repeatable: the first that answers enrols.")
@click.option("--token", required=True, envvar="GAIA_JOIN_TOKEN", help="The bootstrap token ($GAIA_JOIN_TOKEN).")
@click.option("--ca", "ca_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The cluster CA certificate: the master must present a certificate it signed.")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False),
              help="The node's state dir: its key, certificate, etcd password and node.yaml go here.")
@click.option("--id", "node_id", help="This node's id (default: the host name).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="A base node.yaml (listen, advertise, labels...): node.yaml is it plus what the join gives.")
@click.option("--address", "addresses", multiple=True, metavar="HOST",
              help="Another host name or IP for the node's certificate (its advertise host and host_ip "
                   "are always in it). Repeatable.")
@click.option("--retry-for", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="Keep trying while no master answers (masters still starting), up to this long.")
@pass_context
def join(ctx, cluster, masters, token, ca_path, state_dir, node_id, config_path, addresses, retry_for):
    """Enrol this machine as a node with a one-time bootstrap token.

    Then run it: gaia node run --config STATE_DIR/node.yaml"""
    from gaia_cli import join as join_mod
    cluster = cluster or ctx.cluster_option
    if not cluster or not valid_cluster_name(cluster):
        raise CliError(f"--cluster {cluster!r}: name the cluster to join (lowercase letters, digits, '-')",
                       EXIT_BAD_REQUEST)
    try:
        path = join_mod.join(cluster, masters, token, ca_path, state_dir, node_id or socket.gethostname(),
                             config_path, addresses, retry_for)
    except join_mod.JoinError as e:
        raise CliError(str(e)) from None
    except ValueError as e:   # a bad base config or identity
        raise CliError(str(e), EXIT_BAD_REQUEST) from None
    click.echo(f"joined cluster {cluster}; run the node with: gaia node run --config {path}")


@click.command("setup")
@click.option("--cluster", help="The cluster (default: gaia --cluster).")
@click.option("--etcd", "endpoints", required=True, metavar="URL[,URL]", help="etcd endpoints.")
@click.option("--root-password-file", required=True, type=click.Path(dir_okay=False),
              help="etcd's root password. Made (random, 0600) when the file does not exist and etcd "
                   "has authentication off.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where the users' password files go (<user>.password, 0600); existing ones are kept.")
@click.option("--etcd-ca", type=click.Path(exists=True, dir_okay=False), help="CA of https:// etcd members.")
@click.option("--etcd-cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate for etcd.")
@click.option("--etcd-key", type=click.Path(exists=True, dir_okay=False), help="Its key.")
@click.option("--join-token", "join_tokens", multiple=True, metavar="TOKEN[@NODE]",
              help="Also register this bootstrap token (made in advance, e.g. by a lab's provisioning), "
                   "for node NODE only when given. Repeatable.")
@click.option("--join-token-ttl", type=click.FloatRange(min=1), default=24 * 3600.0, show_default=True,
              metavar="SECONDS", help="How long the registered tokens are good for.")
@click.option("--wait", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="Keep trying while etcd does not answer (its members still starting), up to this long.")
@pass_context
def etcd_setup(ctx, cluster, endpoints, root_password_file, out_dir, etcd_ca, etcd_cert, etcd_key,
               join_tokens, join_token_ttl, wait):
    """Make the cluster's etcd roles and users (master, node, dns, client) and turn etcd
    authentication on. Safe to run again; other clusters' users are left alone."""
    cluster = cluster or ctx.cluster_option
    if not cluster or not valid_cluster_name(cluster):
        raise CliError(f"--cluster {cluster!r}: name the cluster", EXIT_BAD_REQUEST)
    deadline = time.monotonic() + wait
    while True:
        try:
            creds = _setup(cluster, endpoints, pathlib.Path(root_password_file), out_dir,
                           dict(ca_file=etcd_ca, cert_file=etcd_cert, key_file=etcd_key), join_tokens, join_token_ttl)
            break
        except etcd_mod.TRANSIENT as e:
            if time.monotonic() > deadline:
                raise CliError(f"etcd {endpoints} does not answer: {e}") from None
            time.sleep(2)
        except (etcd_auth.EtcdAuthError, etcd_mod.AuthError, ValueError) as e:
            raise CliError(str(e)) from None
    for kind, path in etcd_auth.write_passwords(out_dir, creds).items():
        click.echo(f"{creds[kind][0]}: {path}")
    if join_tokens:
        click.echo(f"{len(join_tokens)} join token(s) registered (any already there left as they were)")


def _setup(cluster, endpoints, root_file, out_dir, tls, join_tokens, ttl) -> dict:
    from gaia_common.keys import Keys
    from gaia_master.enrol import JoinTokens, Refused
    client = _root_client(endpoints, root_file, tls)
    try:
        root_password = None if client.metadata else _root_password(root_file)
        creds = etcd_auth.setup(client, cluster, etcd_auth.read_passwords(out_dir, cluster), root_password)
        if join_tokens and not client.metadata:      # auth just went on: root's login from now
            client.close()
            client = _root_client(endpoints, root_file, tls)
        tokens = JoinTokens(Keys(cluster), client)
        for item in join_tokens:
            token, _, node_id = item.partition("@")
            try:
                tokens.register(token, ttl, node_id, created_by="gaia etcd setup")
            except Refused as e:
                raise ValueError(f"--join-token: {e.message}") from None
        return creds
    finally:
        client.close()


def _root_client(endpoints, root_file, tls):
    """Root's client when the password is known and etcd checks it; else an anonymous one."""
    if root_file.exists():
        client = etcd_mod.connect(endpoints, **tls, user=etcd_auth.ROOT,
                                  password=etcd_mod.read_password(str(root_file)))
        if client.metadata:
            return client
        client.close()
    return etcd_mod.connect(endpoints, **tls)


def _root_password(root_file) -> str:
    if root_file.exists():
        return etcd_mod.read_password(str(root_file))
    password = etcd_auth.new_password()
    etcd_auth.write_password(root_file, password)
    return password
