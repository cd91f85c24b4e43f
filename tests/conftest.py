"""Fixtures shared by every layer: real MySQL, real Redis, real `celery worker` processes.

Settings come only from here: `ORCH_*` variables of the caller are cleared at load, so a developer's
environment cannot leak into a test. `ORCH_TEST_MYSQL_URL` and `ORCH_TEST_REDIS_URL` choose the
services (defaults: root on 127.0.0.1:3306, database `orch_test`; Redis database 15);
`ORCH_TEST_AMQP_URL` the RabbitMQ vhost of the tests that run on both brokers (default `orch_test`
as guest on 127.0.0.1:5672, created with rabbitmqctl if missing).
"""

from __future__ import annotations

import os

_MYSQL_URL = os.environ.get("ORCH_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/orch_test")
_REDIS_URL = os.environ.get("ORCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# RabbitMQ for the tests marked `both_brokers`: a vhost of the test run's own (.ci/run creates it)
_AMQP_URL = os.environ.get("ORCH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/orch_test")
for _name in [n for n in os.environ if n.startswith("ORCH_")]:
    del os.environ[_name]
os.environ["ORCH_DATABASE_URL"] = _MYSQL_URL
os.environ["ORCH_BROKER_URL"] = _REDIS_URL
os.environ["ORCH_TEST_AMQP_URL"] = _AMQP_URL
# where test executors find their gates (tests/support/executors.py), whichever broker a worker uses
os.environ["TESTS_REDIS_URL"] = _REDIS_URL
os.environ["ORCH_EXECUTOR_MODULES"] = "tests.support.executors,examples.executors"

from tests.support.fixtures import *  # noqa: E402,F403  (fixtures are registered by import)
from tests.support.fixtures import MYSQL_URL, REDIS_URL  # noqa: E402

assert (MYSQL_URL, REDIS_URL) == (_MYSQL_URL, _REDIS_URL)
