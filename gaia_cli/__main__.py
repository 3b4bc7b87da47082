"""`python -m gaia_cli ...` runs the `gaia` command (used before the package is installed)."""
from gaia_cli.main import cli

if __name__ == "__main__":
    cli(prog_name="gaia")
