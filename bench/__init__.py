"""`python -m bench` (`make bench`): the orchestrator beside raw Celery on the same broker, same run.

Modules: `config` (sizes and services), `processes` (starting and stopping processes), `cluster`
(the run's database, Redis database, workers and API), `memory` (peak RSS), `raw_app` and `raw` (the
raw Celery baseline), `ours` (the orchestrator over HTTP, timings from MySQL), `scenarios` and
`recovery` (what is measured), `stats` and `report` (tables, `docs/BENCHMARKS.md`), `runner` (putting
it together), `profile` (`python -m bench.profile`: py-spy on a worker), `nodepath` (`python -m
bench.nodepath`: the node path alone, in one process, without Celery). `embedded_broker.py` is a
separate tool.
"""
