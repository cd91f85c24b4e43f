"""Every workflow file under `examples/workflows/` is a valid definition whose executors exist, and
its sample input (or, for a workflow without one, the empty input with its defaults) passes the
checks of create: the README tells users to post these files as they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples import WORKFLOWS_DIR
from examples import executors as example_executors
from orchestrator import required_inputs
from orchestrator.definitions import parse_definition
from orchestrator.inputs import validate_input

assert example_executors.EXECUTOR_NAMES  # registered: definitions are checked against the registry
SAMPLE_INPUTS = json.loads((WORKFLOWS_DIR / "sample-inputs.json").read_text(encoding="utf-8"))
WORKFLOW_FILES = sorted(p for p in WORKFLOWS_DIR.glob("*.json") if p.name != "sample-inputs.json")


def test_the_examples_include_the_seed_workflows_and_the_slow_demo() -> None:
    assert {"user-onboarding", "data-sync-pipeline", "slow-demo"} <= {p.stem for p in WORKFLOW_FILES}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_every_example_workflow_is_valid_and_its_sample_input_is_accepted(path: Path) -> None:
    definition = parse_definition(json.loads(path.read_text(encoding="utf-8")))
    assert definition.name == path.stem  # the file is named for the workflow it holds
    data = validate_input(definition.inputs, SAMPLE_INPUTS.get(definition.name, {}))
    required_inputs.check(definition, data)


def test_the_slow_demo_sleeps_20_seconds_by_default_and_resumes_from_its_checkpoint() -> None:
    definition = parse_definition(json.loads((WORKFLOWS_DIR / "slow-demo.json").read_text(encoding="utf-8")))
    assert validate_input(definition.inputs, {})["seconds"] == 20
    nap = next(node for node in definition.nodes if node.id == "nap")
    assert nap.executor == "sleep" and nap.config["checkpoint"] is True
