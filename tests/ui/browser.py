"""The real headless Chromium the `/ui` tests drive, and what they read from a page.

Needs a Chromium binary (Debian: `apt-get install chromium`; or set CHROMIUM_PATH) and the `playwright`
Python package, which drives that binary (no browser download).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser", "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.fail("no Chromium: `apt-get install chromium` (Debian) or set CHROMIUM_PATH", pytrace=False)


def open_page(browser: Any, url: str, init_script: str | None = None) -> Any:
    # reduced motion: no colour transitions or pulsing, so a screenshot shows settled colours
    page = browser.new_page(viewport={"width": 1280, "height": 820}, reduced_motion="reduce")
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    return page


def node_states(page: Any) -> dict[str, str]:
    return dict(
        page.eval_on_selector_all("#dag .node", "els => els.map(e => [e.dataset.nodeId, e.dataset.status])")
    )


_ELAPSED = [
    (re.compile(r"(\d+) ms"), lambda m: int(m[1])),
    (re.compile(r"(\d+\.\d) s"), lambda m: round(float(m[1]) * 1000)),
    (re.compile(r"(\d+) min (\d\d) s"), lambda m: (int(m[1]) * 60 + int(m[2])) * 1000),
    (re.compile(r"(\d+) h (\d\d) min"), lambda m: (int(m[1]) * 60 + int(m[2])) * 60_000),
]


def shown_ms(text: str) -> int | None:
    """A duration as the page shows it (`850 ms`, `12.3 s`, `4 min 05 s`, `2 h 07 min`) in
    milliseconds; None for `—` (not started). Any other text fails the test: it is the format."""
    if text == "—":
        return None
    for pattern, value in _ELAPSED:
        match = pattern.fullmatch(text)
        if match:
            return int(value(match))
    raise AssertionError(f"not a duration as the page writes one: {text!r}")


_SUMMARY_VALUE = """(name) => {
  const term = [...document.querySelectorAll("#summary dt")].find((dt) => dt.textContent === name);
  return term ? term.nextElementSibling.textContent : null;
}"""


def elapsed_ms(page: Any) -> int | None:
    """The instance's elapsed time as the page's summary shows it (`elapsed: 12.3 s`)."""
    shown = page.evaluate(_SUMMARY_VALUE, "elapsed")
    assert shown is not None, "the summary has no elapsed time"
    return shown_ms(shown)


# Where each text of a node's box is drawn, against the box itself (screen pixels).
BOX_GEOMETRY = """
(g) => {
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: e.textContent };
  };
  return {
    status: g.dataset.status,
    skip: g.dataset.skip || null,
    title: g.querySelector("title").textContent,
    rect: box(g.querySelector("rect")),
    label: box(g.querySelector(".label")),
    executor: box(g.querySelector(".sub")),
    state: box(g.querySelector(".state")),
    detail: box(g.querySelector(".detail")),
  };
}
"""


def node_box(page: Any, node_id: str) -> dict[str, Any]:
    return dict(page.eval_on_selector(f'#dag .node[data-node-id="{node_id}"]', BOX_GEOMETRY))


def assert_state_fully_visible(box: dict[str, Any]) -> None:
    """The state is written whole, inside the box, clear of the text beside it; the other texts
    end inside the box (shortened if they must be)."""
    rect, state, detail = box["rect"], box["state"], box["detail"]
    assert state["text"] == box["status"], box
    assert rect["left"] < state["left"] and state["right"] <= rect["right"], box
    assert rect["top"] < state["top"] and state["bottom"] <= rect["bottom"], box
    assert not detail["text"] or detail["left"] >= state["right"], box
    for text in ("label", "executor", "detail"):
        assert box[text]["right"] <= rect["right"], (text, box)
