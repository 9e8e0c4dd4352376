"""Labels: how AI verdicts and people's audits become the labels training uses.

* :mod:`.rule` — the ONE label rule (mean P(A) within a judge configuration; people win);
* :mod:`.summary` — every comparison's AI label from the store, cached;
* :mod:`.audits` — the append-only audit log, its replay, the effective labels;
* :mod:`.queue` — what a person audits next; :mod:`.agreement` — AI vs people (κ, flips);
* :mod:`.listing` — the Preferences tab's listing and detail;
* :mod:`.snapshots` — selections -> TRL datasets with a content hash;
* :mod:`.versions` — constitution versions, diffs and what-if.
"""
