"""The Celery side: the app, the tasks, node execution, heartbeats and shutdown."""
