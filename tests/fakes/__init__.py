"""Test doubles that model real systems strictly enough to catch wrong use."""
