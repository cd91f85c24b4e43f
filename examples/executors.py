"""The example executors; `ORCH_EXECUTOR_MODULES=examples.executors` loads them.

Importing this module registers every executor the two example workflows use: `userValidator`,
`userCreator`, `permissionSetter`, `emailSender` (see `examples.onboarding`) and
`datasync.sourceValidator`, `datasync.dataExtractor`, `datasync.dataTransformer`, `datasync.dataSyncer`
(see `examples.datasync`).
"""

from __future__ import annotations

from examples import datasync, onboarding

__all__ = ["EXECUTOR_NAMES", "datasync", "onboarding"]

EXECUTOR_NAMES = (
    "userValidator",
    "userCreator",
    "permissionSetter",
    "emailSender",
    "datasync.sourceValidator",
    "datasync.dataExtractor",
    "datasync.dataTransformer",
    "datasync.dataSyncer",
)
