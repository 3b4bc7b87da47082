"""gaia ca init / gaia ca issue: a cluster's certificate authority, for operators' machines.

Masters, the CLI's admin and etcd's members get their certificates this way (on a machine
holding the CA key); nodes get theirs by enrolling (`gaia node join`), their key never
leaving them.
"""
import pathlib

import click

from gaia_common.keys import valid_cluster_name
from gaia_cli.context import pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError

ROLES = ("master", "node", "user", "dns")


@click.command("init")
@click.option("--cluster", help="The cluster (default: gaia --cluster).")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="Where ca.crt and ca.key (0600) go; an existing CA there is kept.")
@pass_context
def init(ctx, cluster, directory):
    """Make the cluster's CA (EC P-256, ten years) unless DIR already holds one."""
    from gaia_common.security.pki import CA_CERT, CertificateAuthority, fingerprint
    cluster = cluster or ctx.cluster_option
    if not cluster or not valid_cluster_name(cluster):
        raise CliError(f"--cluster {cluster!r}: name the cluster", EXIT_BAD_REQUEST)
    path = pathlib.Path(directory)
    if (path / CA_CERT).exists():
        ca = CertificateAuthority.load(path)
        click.echo(f"kept the CA of cluster {ca.cluster or '?'} in {path}")
    else:
        ca = CertificateAuthority.create(path, cluster)
        click.echo(f"made a CA for cluster {cluster} in {path}")
    click.echo(f"fingerprint (sha256): {fingerprint(ca.cert_pem)}")


@click.command("issue")
@click.option("--ca-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Holds ca.crt and ca.key.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="Who the certificate is for.")
@click.option("--name", required=True, help="The master's id, the node's id, the user's name...")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="A DNS name or IP the holder serves on (repeatable; servers only).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where STEM.crt and STEM.key (0600) go.")
@click.option("--stem", help="File name stem (default: the role).")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True)
@click.option("--hollow", type=click.IntRange(min=0), default=0, metavar="N",
              help="A node: also name the N hollow nodes `gaia node run --hollow N` serves as NAME.")
def issue(ca_dir, role, name, hosts, out_dir, stem, days, hollow):
    """Issue a certificate and key of the CA in CA_DIR for ROLE/NAME: gaia://<cluster>/<role>/<name>.
    A node's also names its server name, <node>.node.<cluster>.gaia, which masters and AMs
    expect of it."""
    from gaia_common.security.identity import Identity, IdentityError
    from gaia_common.security.pki import CertificateAuthority, PkiError
    from gaia_node.hollow.fleet import hollow_ids
    try:
        ca = CertificateAuthority.load(ca_dir)
        serves = hollow_ids(name, hollow) if hollow else ()
        ca.issue(Identity(role, name, ca.cluster), hosts=hosts, days=days, directory=out_dir, stem=stem or role,
                 serves=serves)
    except (IdentityError, PkiError) as e:
        raise CliError(str(e), EXIT_BAD_REQUEST) from None
    click.echo(str(pathlib.Path(out_dir) / f"{stem or role}.crt"))
