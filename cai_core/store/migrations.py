"""Named, ordered migrations. A migration is applied once and recorded in ``_migrations``;
append new ones at the end, never edit an applied one."""
from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATIONS"]

_HERE = Path(__file__).resolve().parent

MIGRATIONS: list[tuple[str, str]] = [
    ("0001_initial", (_HERE / "schema.sql").read_text()),
]
