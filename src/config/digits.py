"""Schemas of task=digits: its task, data and model options."""
from __future__ import annotations

SCHEMAS: list = []
