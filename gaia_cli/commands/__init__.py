"""One module per command; registered in gaia_cli/main.py."""
