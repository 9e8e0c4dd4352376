"""The facade's imports of other people's files (part of :class:`~cai_core.services.Services`):
the Constitutional AI paper's released prompt files as a constitution, HH-RLHF-shaped prompt
files as prompt sets (those go through ``Services.import_prompts``: :mod:`cai_core.prompt_sets`
reads the shapes)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from . import paper_import

__all__ = ["ImportMixin"]


class ImportMixin:
    """Imports; ``self`` is the Services facade."""

    def import_paper_constitution(self: Any, paths: Sequence[str | Path], name: str, *,
                                  title: str | None = None) -> paper_import.PaperImport:
        """Read the paper's files (shapes detected from content), then save the constitution
        they make as a new version of ``name`` through the same path as an edit in the app
        (``save_constitution``: validated, written beside the database, recorded)."""
        imported = paper_import.import_paper_files(paths, name=name, title=title)
        return replace(imported, constitution=self.save_constitution(imported.constitution.name, imported.toml))
