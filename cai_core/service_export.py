"""The facade's dataset exports (part of :class:`~cai_core.services.Services`): the Hugging
Face Constitutional AI dataset shape (splits train_sft/train_prefs/test_sft/test_prefs)."""
from __future__ import annotations

from pathlib import Path

from .lineage import default_judge_runs, default_sl_runs

__all__ = ["DatasetExportMixin"]


class DatasetExportMixin:
    """Dataset exports; ``self`` is the Services facade."""

    def cai_dataset(self, *, sl_runs: list[str] | None = None, judge_runs: list[str] | None = None,
                    include_flagged: bool = False, helpful_runs: list[str] | None = None, helpful_ratio: float = 1.0,
                    min_confidence: float = 0.0):
        """The four splits of the selected SL and judge runs (default: the latest finished of
        each, as training uses) -> :class:`~cai_core.training.cai_dataset.CaiDataset`."""
        from .training.cai_dataset import build_cai_dataset

        store = self.store  # type: ignore[attr-defined]
        return build_cai_dataset(store, sl_runs=sl_runs or default_sl_runs(store),
                                 judge_runs=judge_runs or default_judge_runs(store), include_flagged=include_flagged,
                                 helpful_runs=helpful_runs or (), helpful_ratio=helpful_ratio,
                                 min_confidence=min_confidence)

    def export_cai_dataset(self, out: str | Path, *, sl_runs: list[str] | None = None,
                           judge_runs: list[str] | None = None, fmt: str = "arrow", overwrite: bool = False,
                           include_flagged: bool = False, helpful_runs: list[str] | None = None,
                           helpful_ratio: float = 1.0, min_confidence: float = 0.0):
        """Write the dataset to the directory ``out`` (``save_to_disk``, or one parquet file per
        split with ``fmt="parquet"``) with its ``selection.json`` -> (path, CaiDataset)."""
        from .training.cai_dataset import check_target, write_cai_dataset

        check_target(out, overwrite, fmt)  # before any work
        cai = self.cai_dataset(sl_runs=sl_runs, judge_runs=judge_runs, include_flagged=include_flagged,
                               helpful_runs=helpful_runs, helpful_ratio=helpful_ratio, min_confidence=min_confidence)
        return write_cai_dataset(cai, out, fmt=fmt, overwrite=overwrite), cai  # type: ignore[arg-type]
