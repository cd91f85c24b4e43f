"""`orchestrator signal <id> <name> --data '<json>'`, run as a process against the live API: it stores
or delivers the signal and says which, and a refused one exits 2 with the API's error on one line."""

from __future__ import annotations

from sqlalchemy import select

from orchestrator.models import SignalRow
from tests.acceptance.helpers import define, nodes, start
from tests.acceptance.test_wait_nodes import approval
from tests.api.test_cli import assert_one_line_error, orchestrator


def test_signal_stores_the_signal_and_a_refused_one_exits_2(db, live_api) -> None:
    define(live_api, approval("wait-cli"))
    instance_id = start(live_api, "wait-cli", start=False)

    sent = orchestrator(live_api, "signal", instance_id, "approval", "--data", '{"approved": true}')
    assert (sent.returncode, sent.stdout) == (0, "signal approval stored until node approve is reached\n")
    again = orchestrator(live_api, "signal", instance_id, "approval", "--data", "{}")
    assert again.returncode == 2
    assert_one_line_error(again, "409", "SIGNAL_ALREADY_STORED")
    unknown = orchestrator(live_api, "signal", instance_id, "nobody", "--data", "{}")
    assert unknown.returncode == 2 and "404" in unknown.stderr
    assert orchestrator(live_api, "signal", instance_id, "approval", "--data", "{bad").returncode == 2
    assert nodes(db, instance_id)["approve"].status == "pending"
    with db.connect() as conn:
        assert conn.execute(select(SignalRow.payload)).scalars().all() == [{"approved": True}]
