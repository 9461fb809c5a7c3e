"""Builders of tiny random models for tests, smoke runs and embedded defaults (no weights, no network)."""
