"""Redacting URLs: credentials and query values never shown, the endpoint still recognisable."""

from __future__ import annotations

import pytest

from orchestrator.redaction import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@host/path?apikey=abc", "https://user:***@host/path?apikey=***"),
        ("https://host:8443/a/b?apikey=abc&x=1", "https://host:8443/a/b?apikey=***&x=***"),
        ("http://user@host/p", "http://user@host/p"),
        ("http://u:p%40ss@host/?t=1#frag", "http://u:***@host/?t=***#***"),
        ("http://host/p?s3cr3t", "http://host/p?***"),
        ("https://host/plain", "https://host/plain"),
        ("http://[::1]:8080/x?k=v", "http://[::1]:8080/x?k=***"),
        ("http://[broken/x?k=v", "***"),
    ],
)
def test_a_url_is_shown_without_its_password_query_values_or_fragment(url, shown):
    assert redact_url(url) == shown


def test_urls_and_request_lines_inside_a_message_are_redacted():
    text = (
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
        "/hook?apikey=SECRET (Caused by NewConnectionError('refused')); "
        "see https://bob:hunter2@example.com/x?token=SECRET2."
    )
    redacted = redact_text(text)
    assert "SECRET" not in redacted and "hunter2" not in redacted
    assert "/hook?apikey=***" in redacted and "https://bob:***@example.com/x?token=***" in redacted
    assert redacted.startswith("HTTPConnectionPool(host='127.0.0.1', port=9)")


def test_an_executor_error_is_recorded_without_the_secrets_of_a_url_it_quotes():
    from orchestrator import failures

    try:
        raise ConnectionError("failed: https://bob:hunter2@hooks.example/x?apikey=SECRET")
    except ConnectionError as exc:
        error = failures.unexpected(exc, "i/n")
    assert error["code"] == "EXECUTOR_ERROR" and "hooks.example" in error["message"]
    for field in ("message", "traceback"):
        assert "hunter2" not in error[field] and "SECRET" not in error[field]
