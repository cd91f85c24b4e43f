"""The node-type registry: every type a definition may name has its module behind the interface."""

from __future__ import annotations

import pytest

from orchestrator import definitions, nodes


def test_every_type_the_validator_accepts_is_registered_and_no_other() -> None:
    assert set(nodes.TYPES) == set(definitions.NODE_TYPES)
    assert all(nodes.of(name).name == name for name in definitions.NODE_TYPES)


def test_a_row_is_typed_by_its_type_column() -> None:
    assert all(nodes.of_row(name) is nodes.of(name) for name in definitions.NODE_TYPES)


def test_only_a_type_that_runs_no_executor_is_handed_off_by_start() -> None:
    assert nodes.of("task").runs_executor and not nodes.of("subworkflow").runs_executor
    with pytest.raises(TypeError):
        nodes.of("task").start(None, None, None, {})  # type: ignore[arg-type]
