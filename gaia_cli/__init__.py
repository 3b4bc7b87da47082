"""The `gaia` command line."""
