"""Sfair's policy plugins, one concern per module (filters and scorers)."""
