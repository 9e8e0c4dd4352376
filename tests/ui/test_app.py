"""The app shell: builds from services, its handlers read the store, it refuses an open host without a login."""
from __future__ import annotations

import pytest


def test_build_app_and_overview_handler(tmp_path, scripted):
    import gradio as gr

    from app import build_app
    from cai_core.services import Services
    from cai_core.config import Settings
    from views import overview

    services = Services(Settings(db=str(tmp_path / "t.duckdb"), backend="scripted", model="test"), backend=scripted)

    services.import_prompts(__import__("cai_core.prompt_sets", fromlist=["x"]).shipped_prompt_sets()["benign"], name="benign")
    demo = build_app(services)
    assert isinstance(demo, gr.Blocks)
    with gr.Blocks():
        refresh, _ = overview.build(services)
    stats, sets, cons, runs = refresh()
    assert stats["prompts"] == 325 and sets[0][0] == "benign"
    assert {c[0] for c in cons} >= {"seed", "harmless"}


def test_shared_host_requires_login():
    from app import main

    with pytest.raises(SystemExit) as e:
        main(["--host", "0.0.0.0", "--port", "0"])
    assert e.value.code == 2
