// Shared by the UI pages: API calls, signing out, DOM helpers, formatting.
// With ORCH_API_TOKENS set the API is read with the session cookie of /ui/login, which the browser
// sends by itself (fetch and EventSource alike); no script ever sees a token.
"use strict";

const Orch = (() => {
  const params = new URLSearchParams(window.location.search);
  const root = document.body.dataset.root || "";
  const apiBase = root + "/api/v1";
  const SVG_NS = "http://www.w3.org/2000/svg";

  function signIn() {
    const here = window.location.pathname + window.location.search;
    window.location.assign(root + "/ui/login?next=" + encodeURIComponent(here));
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const response = await fetch(apiBase + path, { headers, cache: "no-store", credentials: "same-origin" });
    noteServerClock(response);
    if (response.status === 401) signIn(); // no session, or it lapsed, or its token was removed
    if (!response.ok) {
      let message = "HTTP " + response.status;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message += ": " + body.error.message;
      } catch (_) {
        // not JSON: the status says enough
      }
      const error = new Error(path + ": " + message);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  // el("div", {class: "x", "data-a": 1}, child, "text") -- text is always set as text, never as HTML
  function make(element, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
      else element.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }
  const el = (tag, attrs, ...children) => make(document.createElement(tag), attrs, children);
  const svg = (tag, attrs, ...children) => make(document.createElementNS(SVG_NS, tag), attrs, children);

  function time(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return isNaN(date) ? String(iso) : date.toLocaleString();
  }

  // Elapsed times are counted from the server's timestamps with this browser's clock. A browser whose
  // clock is off by more than the resolution of the HTTP Date header (1 s) is corrected by the
  // difference, so a running instance never shows a negative or inflated time.
  let serverOffsetMs = 0;
  function noteServerClock(response) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (isNaN(date)) return;
    const offset = date + 500 - Date.now(); // the header is truncated to the second: +0.5 s on average
    serverOffsetMs = Math.abs(offset) > 1500 ? offset : 0;
  }
  const serverNow = () => Date.now() + serverOffsetMs;

  // 850 ms, 12.3 s, 4 min 05 s, 2 h 07 min: rounded down, so a live count never jumps ahead
  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "—";
    ms = Math.max(0, ms);
    if (ms < 1000) return Math.floor(ms) + " ms";
    if (ms < 60000) return (Math.floor(ms / 100) / 10).toFixed(1) + " s";
    const pad = (n) => String(n).padStart(2, "0");
    const s = Math.floor(ms / 1000);
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + pad(s % 60) + " s";
    return Math.floor(m / 60) + " h " + pad(m % 60) + " min";
  }

  // from start to end, or to now while there is no end; null before a start
  function between(startIso, endIso) {
    if (!startIso) return null;
    const end = endIso ? Date.parse(endIso) : serverNow();
    return end - Date.parse(startIso);
  }

  function json(value) {
    return value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await fetch(root + "/ui/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "{}",
        credentials: "same-origin",
      });
      window.location.assign(root + "/ui/login");
    });
  }

  return { api, apiBase, root, params, el, svg, time, duration, between, json };
})();
