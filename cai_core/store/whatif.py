"""What-if re-judgements: verdicts of a draft constitution, stored apart from the verdicts."""
from __future__ import annotations

from typing import Sequence

from ..types import Verdict, as_row
from .db import Store

__all__ = ["store_what_if_verdicts", "what_if_verdicts"]

_COLUMNS = ("id", "run_id", "comparison_id", "principle_id", "constitution_version", "judge", "mode", "ab_order",
            "raw", "choice", "p_first", "p_a")


def store_what_if_verdicts(store: Store, verdicts: Sequence[Verdict]) -> None:
    store.insert("what_if_verdicts", [as_row(v) for v in verdicts])


def what_if_verdicts(store: Store, run_id: str) -> list[Verdict]:
    """Both sides of a what-if run: its verdicts on the old text (run id ``RUN#old``) and on the
    draft's (``RUN#new``)."""
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM what_if_verdicts WHERE run_id IN (?, ?) ORDER BY id",
                       [f"{run_id}#old", f"{run_id}#new"])
    return [Verdict(**r) for r in rows]
