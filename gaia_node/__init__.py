"""The node manager: registration, container drivers, isolation, service registration."""
