"""`python -m orchestrator_cli`: the `orchestrator` command without its console script."""

from __future__ import annotations

import sys

from orchestrator_cli.cli import main

sys.exit(main())
