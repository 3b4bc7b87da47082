"""The ApplicationMaster: one per application, keeps its instances running."""
