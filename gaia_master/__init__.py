"""The master: leader election, the application table, scheduling, AM launch and restart."""
