"""Prompt templates, one ``.txt`` file each (``string.Template`` syntax: ``$name``).

Keeping them as files lets people read and tune the exact words the model sees without
reading code (DESIGN.md rule 3)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from string import Template

__all__ = ["template", "render"]

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def template(name: str) -> Template:
    return Template((_HERE / f"{name}.txt").read_text(encoding="utf-8").rstrip("\n"))


def render(name: str, **values: str) -> str:
    return template(name).substitute(**values)
