"""The instance listing on SQLite (the `orchestrator dev` profile): the same JSON-path tag filters and
keyset pages as on MariaDB, where the other API tests run them."""

from __future__ import annotations

from orchestrator import catalog, queries
from orchestrator.db import make_engine
from orchestrator.instances import InstanceRequest, create_instance
from orchestrator.migrate import upgrade
from orchestrator.queries import InstanceFilter
from tests.api.helpers import GREETING


def test_tag_filters_and_cursors_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        catalog.save_definition(engine, GREETING)
        tags = [{"env": "prod", "team": "é😀"}, {"env": "dev"}, {"env": "prod"}]
        ids = [
            create_instance(engine, InstanceRequest("greeting", input={"email": "x"}, tags=t)).instance_id
            for t in tags
        ]

        def listed(where: InstanceFilter, limit: int = 50) -> list[str]:
            return [i["id"] for i in queries.list_instances(engine, where, limit).items]

        assert listed(InstanceFilter()) == ids[::-1]
        assert listed(InstanceFilter(tags=(("env", "prod"),))) == [ids[2], ids[0]]
        assert listed(InstanceFilter(tags=(("env", "prod"), ("team", "é😀")))) == [ids[0]]
        assert listed(InstanceFilter(tags=(("env", "' OR 1=1 --"),))) == []
        assert listed(InstanceFilter(statuses=("pending",), workflow="greeting")) == ids[::-1]
        first = queries.list_instances(engine, InstanceFilter(), 2)
        assert first.next_cursor is not None
        rest = queries.list_instances(engine, InstanceFilter(), 2, first.next_cursor)
        assert [i["id"] for i in first.items + rest.items] == ids[::-1] and rest.next_cursor is None
    finally:
        engine.dispose()
