from .db import Store, StoreLocked

__all__ = ["Store", "StoreLocked"]
