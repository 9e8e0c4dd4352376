"""`cai`: the command-line face of Constitution Lab (see :mod:`.main`)."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
