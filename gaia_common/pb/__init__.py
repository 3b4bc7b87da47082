"""Generated from proto/ by gaia_common.protogen; do not edit."""
