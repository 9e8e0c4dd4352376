"""`cai stats`: counts of every record kind."""
from __future__ import annotations

import json


def register(sub, common) -> None:
    st = sub.add_parser("stats", parents=[common], help="counts of every record kind", description="Counts of every record kind.")
    st.add_argument("--json", action="store_true", help="one JSON object on stdout")
    st.set_defaults(run=run)


def run(args, services) -> int:
    stats = services.stats()
    if args.json:
        print(json.dumps(stats))
    else:
        for k, v in stats.items():
            print(f"{k:20} {v}")
    return 0
