"""The embedded broker of `orchestrator dev`: a private redis-server that keeps queued messages
across a clean restart and replaces a server left behind by a killed dev run."""

from __future__ import annotations

import redis

from orchestrator.embedded_redis import EmbeddedRedis


def test_messages_survive_a_restart_and_a_stale_server_is_replaced(tmp_path):
    first = EmbeddedRedis(tmp_path).start()
    client = redis.Redis(unix_socket_path=str(first.socket))
    client.rpush("queue", "message")
    client.close()
    first.stop()

    leftover = EmbeddedRedis(tmp_path).start()  # then "killed": never stopped
    replacement = EmbeddedRedis(tmp_path).start()
    try:
        assert leftover.proc.wait(timeout=10) is not None  # the stale server was shut down
        client = redis.Redis(unix_socket_path=str(replacement.socket))
        assert client.lrange("queue", 0, -1) == [b"message"]  # the append-only file kept it
        client.close()
    finally:
        replacement.stop()
        leftover.stop()
    assert replacement.proc.poll() is not None
