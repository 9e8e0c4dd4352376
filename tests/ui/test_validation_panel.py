"""The Preferences tab's judge-validation panel, driven with gradio_client against the real app
(scripted backend, temp store): the empty state, a validation job on a gold set polled to the
end, the results table and summary it fills, bad input refused, and the reliability figure."""
from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from ui_server import start_server, wait_for  # noqa: E402

pytestmark = [
    pytest.mark.timeout(120),
    # gradio's own Dataframe code on pandas 3 (not ours)
    pytest.mark.filterwarnings("ignore:.*future.no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

LIMIT = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("ui-validate"), populate_store=False)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def gold() -> str:
    """The shipped gold set (imported on first use, as the panel offers it)."""
    return "hhh"


def status_of(panel_html: str) -> str:
    m = re.search(r"data-status='([a-z]+)'", panel_html)
    return m.group(1) if m else ""


def figure(plot: dict) -> dict:
    assert plot["type"] == "plotly", plot
    return json.loads(plot["plot"])


def test_validate_judge_fills_the_table_summary_and_figure(server, client, gold):
    # empty state: nothing validated yet, and nothing breaks
    table, summary, plot = client.predict(api_name="/judge_validate_refresh")
    assert table["data"] in ([], [[""] * len(table["headers"])]) or not any(any(c for c in r) for r in table["data"])
    assert summary.startswith("No validations yet")
    assert "no validations yet" in figure(plot)["layout"]["title"]["text"]
    # bad input is refused with a message, and starts no job
    with pytest.raises(AppError, match="at least one judge mode"):
        client.predict(gold, "test", [], LIMIT, api_name="/judge_validate")
    with pytest.raises(AppError, match="no gold set or file"):
        client.predict("no-such-gold-set", "test", ["logprob"], LIMIT, api_name="/judge_validate")
    assert server.services.jobs.list() == []

    job, panel = client.predict(gold, "test", ["logprob"], LIMIT, api_name="/judge_validate")
    assert job and status_of(panel) in ("queued", "running", "finished")
    last: list = []

    def ended():
        last[:] = [client.predict(job, api_name="/judge_validate_poll")]
        return status_of(last[0][0]) in ("finished", "failed", "cancelled")

    wait_for(ended, timeout=30, interval=0.3, what="the validation job to end")
    panel, table, summary, plot = last[0]
    assert status_of(panel) == "finished", panel
    assert table["headers"][:5] == ["judge", "mode", "gold", "split", "n"]
    mine = [r for r in table["data"] if r[1] == "logprob"]
    assert len(mine) == 1 and int(mine[0][4]) == LIMIT and mine[0][3] == "test", table["data"]
    assert re.fullmatch(r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", mine[0][5]), mine[0][5]
    v = server.services.validations()[0]
    assert mine[0][-1] == v["run_id"] and v["n"] == LIMIT and v["mode"] == "logprob"
    # the summary says in words what the interval and the flip rate mean
    assert summary.startswith("**Newest:**") and "chance" in summary and "position" in summary
    assert ("includes 50 %" in summary) == (v["ci_lo"] <= 0.5 <= v["ci_hi"])
    assert ("exceeds 50 %" in summary) == (v["flip_rate"] is not None and v["flip_rate"] > 0.5)
    fig = figure(plot)
    assert fig["data"][0]["name"] == "perfectly calibrated"
    assert [t["name"] for t in fig["data"][1:]] == [f"scripted:base · logprob · {v['gold']}/test ({v['run_id']})"]
    # a refresh shows the same results
    table2, summary2, _ = client.predict(api_name="/judge_validate_refresh")
    assert table2["data"] == table["data"] and summary2 == summary


def test_reliability_figure_for_a_validation_and_for_none(server, gold):
    from views.plots import reliability_figure

    empty = reliability_figure([])
    assert not empty.data and "no validations yet" in empty.layout.title.text
    if not server.services.validations():  # run alone: validate first, through the services
        from cai_core.runners.validate import ValidateConfig

        server.services.validate_judge(gold=gold, config=ValidateConfig(gold=gold, limit=LIMIT))
    vs = server.services.validations()
    fig = reliability_figure(vs[:1])
    bins = [b for b in vs[0]["metrics"]["reliability"] if b["n"]]
    assert len(fig.data) == 2 and fig.data[0].name == "perfectly calibrated"
    line = fig.data[1]
    assert list(line.x) == pytest.approx([b["mean_p_a"] for b in bins])
    assert list(line.y) == pytest.approx([b["freq_a"] for b in bins])
    assert list(line.text) == [f"n={b['n']}" for b in bins] and sum(b["n"] for b in bins) <= LIMIT
    # a validation without probabilities (all unparsed) draws no line and says so
    blank = {**vs[0], "metrics": {**vs[0]["metrics"], "reliability": [{**b, "n": 0, "mean_p_a": None, "freq_a": None}
                                                                       for b in bins]}}
    assert "no probabilities" in reliability_figure([blank]).layout.title.text
