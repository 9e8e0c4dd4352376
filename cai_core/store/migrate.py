"""Named, ordered migrations: ``migrations/NNNN_name.sql``, applied once each in file-name order
and recorded in ``_migrations``. Add a new file at the end; never edit an applied one."""
from __future__ import annotations

from importlib import resources

__all__ = ["MIGRATIONS", "migrations"]


def migrations() -> list[tuple[str, str]]:
    """(name, sql) of every migration file, in order (name = file name without ``.sql``)."""
    folder = resources.files(__package__) / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name[: -len(".sql")], f.read_text(encoding="utf-8")) for f in files]


MIGRATIONS: list[tuple[str, str]] = migrations()
