"""Per-container isolation that lives outside the cgroups package: one module per concern."""
