"""How failures become one line on stderr and an exit code scripts can branch on.

Exit codes (documented in docs/cli.md):
  0  success
  1  Gaia could not do it: no leader answered, etcd unreachable, a daemon failed, anything else
  2  the request was wrong: bad usage, invalid spec, unknown cluster, bad config,
     or the master answered INVALID_ARGUMENT / ALREADY_EXISTS / OUT_OF_RANGE
  3  the named thing does not exist (the master answered NOT_FOUND)
"""
import click
import grpc

from gaia_common import etcd as etcd_mod
from gaia_common.client import GaiaError
from gaia_common.config import ConfigError
from gaia_common.quantity import QuantityError
from gaia_common.spec import SpecError

EXIT_FAILURE = 1
EXIT_BAD_REQUEST = 2
EXIT_NOT_FOUND = 3

_CODE_EXITS = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_BAD_REQUEST,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_BAD_REQUEST,
    grpc.StatusCode.ABORTED: EXIT_BAD_REQUEST,      # e.g. scaling an app that has finished
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
}


class CliError(click.ClickException):
    """Printed as `error: <message>` on stderr; exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def translate(exc: BaseException):
    """The CliError for an exception the CLI expects, or None to let it propagate."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, GaiaError):
        return CliError(exc.message, _CODE_EXITS.get(exc.code, EXIT_FAILURE))
    if isinstance(exc, (ConfigError, SpecError, QuantityError)):
        return CliError(str(exc), EXIT_BAD_REQUEST)
    if isinstance(exc, etcd_mod.TRANSIENT):
        return CliError(f"etcd did not answer: {exc or type(exc).__name__}", EXIT_FAILURE)
    return None
