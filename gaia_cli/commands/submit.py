"""gaia submit FILE: validate an app spec locally, then hand it to the leading master."""
import pathlib
import sys
import uuid

import click

from gaia_common import spec as spec_mod
from gaia_common.pb import master_pb2
from gaia_cli.context import pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError
from gaia_cli.output import emit, output_option


def read_spec(path: str):
    """The validated AppSpec in `path` ('-': stdin), or a CliError naming the field."""
    try:
        text = sys.stdin.read() if path == "-" else pathlib.Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{path}: {e}", EXIT_BAD_REQUEST) from None
    try:
        return spec_mod.load_yaml(text)
    except spec_mod.SpecError as e:
        raise CliError(f"{path}: {e.field}: {e.problem}", EXIT_BAD_REQUEST) from None


def submit_spec(client, spec, idempotency_key: str = None) -> master_pb2.SubmitAppResponse:
    """Send `spec` to the leading master through `client` (a MasterClient)."""
    # One key per invocation: MasterClient.call resends this very request through failovers,
    # and the master answers a repeated key with the first app instead of making a second.
    request = master_pb2.SubmitAppRequest(spec=spec, idempotency_key=idempotency_key or str(uuid.uuid4()))
    return client.call("SubmitApp", request)


@click.command()
@click.argument("spec_file", metavar="FILE")
@click.option("--idempotency-key", metavar="KEY",
              help="Reuse KEY to make re-running this command safe (default: a fresh one per run).")
@output_option
@pass_context
def submit(ctx, spec_file, idempotency_key, fmt):
    """Submit an application and print its id. FILE is YAML; '-' reads stdin."""
    spec = read_spec(spec_file)
    emit(fmt, submit_spec(ctx.client(), spec, idempotency_key), lambda r: r.app_id)
