// One instance: its workflow's DAG as an SVG (layered, left to right), each node coloured by its state
// and kept live from the event stream, or by polling /nodes and /status when the stream is unavailable.
"use strict";

(() => {
  const { api, apiBase, params, el, svg, time, duration, between, json } = Orch;
  const instanceId = document.body.dataset.instanceId;
  const base = "/instances/" + encodeURIComponent(instanceId);
  const FINISHED = new Set(["completed", "failed", "cancelled"]);
  const NODE_DONE = new Set(["completed", "failed", "skipped", "cancelled"]);
  const RANK = { pending: 0, queued: 1, running: 2, waiting: 2, completed: 3, failed: 3, skipped: 3, cancelled: 3 };
  // why a node was skipped, from the code its error carries; a skipped node without one had a false `when`
  const SKIPPED_BY = { UPSTREAM_FAILED: "upstream failed", INSTANCE_FAILED: "instance failed" };
  const NODE_W = 190, NODE_H = 60, GAP_X = 64, GAP_Y = 16, PAD = 12, INSET = 10;
  const POLL_MS = 1000, TICK_MS = 1000, LOG_LINES = 200;
  const WAITING = { worker: "waiting for a worker", retryDelay: "waiting for its retry delay" };
  const ITEMS_SHOWN = 100; // per-item states drawn in a map's details (one page, the API's most); the counters cover every item
  const COUNTS_MS = 1000; // at most one read of the map counters per second, however many items end

  const state = {
    nodes: new Map(), // node id -> {spec, g, sub, edgesOut: [], data}
    selected: null,
    instance: null,
    finished: false,
    source: null,
    poller: null,
    logIds: new Set(),
    ticks: 0,
    clock: null, // the interval that counts the elapsed time while the instance has not finished
    counting: null, // the timer of the next read of the map counters, while one is due
  };
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- layout

  function dependsOn(spec, known) {
    return (Array.isArray(spec.dependsOn) ? spec.dependsOn : []).filter((d) => known.has(d));
  }

  // Layer = longest path from a root (Kahn's order, no recursion: a 10,000-node chain is fine). An edge
  // that spans several layers passes through a waypoint in each layer between, so it is routed around
  // the nodes there instead of under them. Within a layer, a few barycenter sweeps put nodes near
  // their parents and children to cut crossings.
  function layout(specs) {
    const known = new Map(specs.map((s) => [s.id, s]));
    const children = new Map(specs.map((s) => [s.id, []]));
    const indegree = new Map();
    for (const s of specs) {
      const deps = dependsOn(s, known);
      indegree.set(s.id, deps.length);
      for (const d of deps) children.get(d).push(s.id);
    }
    const depth = new Map(specs.map((s) => [s.id, 0]));
    const queue = specs.filter((s) => indegree.get(s.id) === 0).map((s) => s.id);
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      for (const child of children.get(id)) {
        depth.set(child, Math.max(depth.get(child), depth.get(id) + 1));
        indegree.set(child, indegree.get(child) - 1);
        if (indegree.get(child) === 0) queue.push(child);
      }
    }
    const layers = [];
    const place = (id, d) => (layers[d] = layers[d] || []).push(id);
    const up = new Map(); // slot -> slots one layer up (waypoints included)
    const down = new Map();
    const link = (a, b) => {
      (down.get(a) || down.set(a, []).get(a)).push(b);
      (up.get(b) || up.set(b, []).get(b)).push(a);
    };
    const routes = new Map(); // "dep\u0000id" -> waypoint slots, in order
    for (const s of specs) place(s.id, depth.get(s.id));
    for (const s of specs) {
      for (const dep of dependsOn(s, known)) {
        let previous = dep;
        const waypoints = [];
        for (let d = depth.get(dep) + 1; d < depth.get(s.id); d++) {
          const slot = "\u0000" + dep + "\u0000" + s.id + "\u0000" + d;
          place(slot, d);
          link(previous, slot);
          waypoints.push(slot);
          previous = slot;
        }
        link(previous, s.id);
        routes.set(dep + "\u0000" + s.id, waypoints);
      }
    }
    const index = new Map();
    layers.forEach((layer) => layer.forEach((id, i) => index.set(id, i)));
    const sweep = (layer, neighbours) => {
      const key = new Map(
        layer.map((id, i) => {
          const around = neighbours.get(id) || [];
          return [id, around.length ? around.reduce((sum, n) => sum + index.get(n), 0) / around.length : i];
        })
      );
      layer.sort((a, b) => key.get(a) - key.get(b));
      layer.forEach((id, i) => index.set(id, i));
    };
    for (let pass = 0; pass < 4; pass++) {
      for (let l = 1; l < layers.length; l++) sweep(layers[l], up);
      for (let l = layers.length - 2; l >= 0; l--) sweep(layers[l], down);
    }
    const widest = Math.max(1, ...layers.map((l) => l.length));
    const positions = new Map();
    layers.forEach((layer, l) => {
      const offset = ((widest - layer.length) * (NODE_H + GAP_Y)) / 2;
      layer.forEach((id, i) => {
        positions.set(id, { x: PAD + l * (NODE_W + GAP_X), y: PAD + offset + i * (NODE_H + GAP_Y) });
      });
    });
    return {
      positions,
      routes,
      width: PAD * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X,
      height: PAD * 2 + widest * NODE_H + (widest - 1) * GAP_Y,
    };
  }

  // The SVG path of one edge: a curve from the source's right side to the target's left side, running
  // straight across each waypoint's slot on the way.
  function edgePath(from, waypoints, to) {
    const mid = NODE_H / 2;
    const points = [[from.x + NODE_W, from.y + mid]];
    for (const w of waypoints) points.push([w.x, w.y + mid], [w.x + NODE_W, w.y + mid]);
    points.push([to.x - 2, to.y + mid]);
    let d = `M${points[0][0]},${points[0][1]}`;
    for (let i = 1; i < points.length; i++) {
      const [[x1, y1], [x2, y2]] = [points[i - 1], points[i]];
      if (i % 2 === 0) {
        d += ` L${x2},${y2}`; // across a waypoint's slot
      } else {
        const bend = Math.max(24, (x2 - x1) / 2);
        d += ` C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
      }
    }
    return d;
  }

  // Text in a box is fitted by its width (measured on a canvas in the font the stylesheet gives that
  // text): a name too long for the box ends in "…" and is whole in the node's tooltip. The state has
  // its own line and is never shortened.
  const fonts = new Map(); // class -> CSS font, read once from a drawn element
  const measurer = document.createElement("canvas").getContext("2d");

  let measuring = "";
  function textWidth(text, cls) {
    const font = fonts.get(cls) || "11px sans-serif";
    if (font !== measuring) measurer.font = measuring = font;
    return measurer.measureText(text).width;
  }

  function fit(text, cls, room) {
    if (textWidth(text, cls) <= room) return text;
    let [lo, hi] = [0, text.length - 1]; // the longest prefix that fits with its ellipsis
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (textWidth(text.slice(0, mid) + "…", cls) <= room) lo = mid;
      else hi = mid - 1;
    }
    return text.slice(0, lo) + "…";
  }

  function learnFonts(g) {
    if (fonts.size) return;
    for (const text of g.querySelectorAll("text")) {
      const css = getComputedStyle(text);
      fonts.set(text.getAttribute("class"), `${css.fontStyle} ${css.fontWeight} ${css.fontSize} ${css.fontFamily}`);
    }
  }

  // The line under a node's id: its executor, or what its type does (a map's with its item counter)
  function subline(spec, data) {
    const type = spec.type || "task";
    if (type === "map") {
      // /nodes counts every map's items, 0/0 before it made them: the counter shows once it has
      const items = data && data.items;
      const counted = items && (items.total > 0 || NODE_DONE.has(data.status));
      const body = spec.node ? spec.node.executor || spec.node.type || "task" : "";
      return counted ? `map · ${items.done}/${items.total} items` : `map · ${body}`;
    }
    if (type === "wait") return "wait · signal " + (spec.signal || "");
    if (type === "sleep") return spec.until ? "sleep · until " + spec.until : "sleep · " + duration(spec.duration);
    return spec.executor || type;
  }

  // Why a waiting node waits: its signal (and when that wait times out) or its timer
  function waitingText(reason) {
    if (!reason) return null;
    if (typeof reason === "string") return WAITING[reason] || reason;
    if (reason.signal) return `signal "${reason.signal}"` + (reason.until ? " (times out " + time(reason.until) + ")" : "");
    if (reason.limit) {
      return reason.kind === "rate"
        ? `a token of ${reason.limit}` + (reason.until ? " (at " + time(reason.until) + ")" : "")
        : `a slot of ${reason.limit}`;
    }
    if (reason.until) return "until " + time(reason.until);
    return json(reason);
  }

  function skipReason(data) {
    if (data.status !== "skipped") return null;
    if (data.skipReason) return data.skipReason; // /nodes says it; events carry only the error
    return (data.error && SKIPPED_BY[data.error.code]) || "condition false";
  }

  function draw(specs) {
    const known = new Map(specs.map((s) => [s.id, s]));
    const { positions, routes, width, height } = layout(specs);
    const root = $("dag");
    root.replaceChildren();
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.append(
      svg(
        "defs",
        {},
        svg(
          "marker",
          { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
          svg("path", { d: "M0,0 L10,5 L0,10 z" })
        )
      )
    );
    const edges = svg("g", { class: "edges" });
    const nodes = svg("g", { class: "nodes" });
    root.append(edges, nodes);
    const room = NODE_W - 2 * INSET;
    for (const spec of specs) {
      const { x, y } = positions.get(spec.id);
      const label = svg("text", { class: "label", x: INSET, y: 19 }, spec.id);
      const sub = svg("text", { class: "sub", x: INSET, y: 35 }, subline(spec, null));
      const stateText = svg("text", { class: "state", x: INSET, y: 51 }, "pending");
      const detail = svg("text", { class: "detail", x: INSET, y: 51 });
      const title = svg("title", {});
      const g = svg(
        "g",
        {
          class: "node",
          "data-node-id": spec.id,
          "data-type": spec.type || "task",
          "data-status": "pending",
          transform: `translate(${x},${y})`,
          tabindex: 0,
          role: "button",
          onclick: () => select(spec.id),
          onkeydown: (e) => (e.key === "Enter" || e.key === " ") && select(spec.id),
        },
        title,
        svg("rect", { width: NODE_W, height: NODE_H, rx: 7 }),
        label,
        sub,
        stateText,
        detail
      );
      nodes.append(g);
      learnFonts(g);
      label.textContent = fit(spec.id, "label", room);
      sub.textContent = fit(sub.textContent, "sub", room);
      const entry = {
        spec,
        g,
        sub,
        title,
        stateText,
        detail,
        edgesOut: [],
        data: { nodeId: spec.id, status: "pending" },
      };
      state.nodes.set(spec.id, entry);
      renderNode(entry);
    }
    for (const spec of specs) {
      for (const dep of dependsOn(spec, known)) {
        const waypoints = (routes.get(dep + "\u0000" + spec.id) || []).map((w) => positions.get(w));
        const path = svg("path", {
          class: "edge",
          "data-from": dep,
          "data-to": spec.id,
          "data-status": "pending",
          d: edgePath(positions.get(dep), waypoints, positions.get(spec.id)),
          "marker-end": "url(#arrow)",
        });
        edges.append(path);
        state.nodes.get(dep).edgesOut.push(path);
      }
    }
  }

  // ---------------------------------------------------------------- state

  function nodeIdOf(data) {
    return data.nodeId || data.node_id || data.node || data.id;
  }

  // `guarded` merges a snapshot that may be older than events already applied: never go back to an
  // earlier attempt, nor to an earlier state of the same attempt.
  function applyNode(data, guarded) {
    const id = nodeIdOf(data);
    const entry = state.nodes.get(id);
    if (!entry || !data.status) return;
    const current = entry.data;
    // a map's event carries `itemsLeft` (the stream sends no event per item): when it moves, items
    // ended, and the counters by state come from /nodes
    if (!guarded && "itemsLeft" in data && data.itemsLeft !== current.itemsLeft) countItemsSoon();
    if (guarded) {
      const [a, b] = [current.attempt || 0, data.attempt || 0];
      if (a > b || (a === b && (RANK[current.status] || 0) > (RANK[data.status] || 0))) return;
    }
    entry.data = { ...current, ...data, nodeId: entry.spec.id };
    const status = entry.data.status;
    renderNode(entry);
    if (state.selected === entry.spec.id) {
      renderDetails();
      // events carry no output: fetch it once the selected node has finished
      if (!guarded && NODE_DONE.has(status) && !("output" in data)) loadDetails();
    }
    renderProgress();
  }

  // Items moved: the map's counters are read again, at most once a second however many items end
  function countItemsSoon() {
    if (state.counting !== null) return;
    state.counting = setTimeout(() => {
      state.counting = null;
      loadDetails();
    }, COUNTS_MS);
  }

  // The box: its state on a line of its own (never shortened), then what fits of the attempt, the
  // worker or why it was skipped; the tooltip has all of it.
  function renderNode(entry) {
    const { spec, data, g, sub, stateText, detail, title } = entry;
    const status = data.status;
    if (spec.type === "map" && data.items) sub.textContent = fit(subline(spec, data), "sub", NODE_W - 2 * INSET);
    const reason = skipReason(data);
    g.dataset.status = status;
    if (reason) g.dataset.skip = reason.replace(/ /g, "-");
    else delete g.dataset.skip;
    const bits = [];
    if ((data.attempt || 0) > 1) bits.push("#" + data.attempt);
    if (data.workerId && status === "running" && !data.items) bits.push(data.workerId);
    if (status === "waiting" && waitingText(data.waitingFor)) bits.push(waitingText(data.waitingFor));
    if (reason) bits.push(reason);
    stateText.textContent = status;
    const x = INSET + textWidth(status, "state") + 5;
    detail.setAttribute("x", x);
    detail.textContent = bits.length ? fit("· " + bits.join(" · "), "detail", NODE_W - INSET - x) : "";
    title.textContent = [
      spec.id,
      spec.executor ? "executor: " + spec.executor : "type: " + (spec.type || "task"),
      "state: " + status + (reason ? " (" + reason + ")" : ""),
      ...bits.filter((b) => b !== reason),
    ].join("\n");
    for (const edge of entry.edgesOut) {
      edge.dataset.status = status;
      if (reason) edge.dataset.skip = g.dataset.skip;
      else delete edge.dataset.skip;
    }
  }

  // A node counts as finished as the status endpoint counts it: completed, failed, or skipped by its
  // own `when`; a node cancelled or skipped because a failure ended its instance never ran.
  function finishedNode(data) {
    if (data.status === "skipped") return skipReason(data) === "condition false";
    return data.status === "completed" || data.status === "failed";
  }

  function renderProgress() {
    const all = [...state.nodes.values()];
    const done = all.filter((n) => finishedNode(n.data)).length;
    const running = all.filter((n) => n.data.status === "running").length;
    const waiting = all.filter((n) => n.data.status === "waiting").length;
    const skipped = all.filter((n) => n.data.status === "skipped").length;
    const computed = all.length ? Math.round((100 * done) / all.length) : 100;
    const progress = typeof state.instance?.progress === "number" ? state.instance.progress : computed;
    const bar = $("progress-bar");
    bar.style.width = progress + "%";
    bar.parentElement.title = `${progress}% (finished nodes / total)`;
    const counts = $("counts");
    if (counts) {
      counts.textContent =
        `${done}/${all.length} finished, ${running} running` +
        (waiting ? `, ${waiting} waiting` : "") +
        (skipped ? `, ${skipped} skipped` : "");
    }
  }

  function applyStatus(status) {
    if (!status || !status.status) return;
    state.instance = { ...(state.instance || {}), ...status };
    const badge = $("instance-status");
    badge.dataset.status = status.status;
    badge.textContent = status.status;
    if (status.waitingFor) {
      // why each queued node is not running yet; node events do not carry it
      for (const [id, entry] of state.nodes) {
        entry.data.waitingFor = status.waitingFor[id] || null;
        if (entry.data.status === "waiting") renderNode(entry);
      }
      if (state.selected) renderDetails();
    }
    renderSummary();
    if (FINISHED.has(status.status)) finish();
  }

  function renderSummary() {
    const i = state.instance || {};
    const rows = [
      ["workflow", i.workflow ? i.workflow + " " + (i.version || "") : "—"],
      ["nodes", el("span", { id: "counts" })],
      ["created", time(i.createdAt)],
      ["started", time(i.startedAt)],
      ["finished", time(i.finishedAt)],
      ["elapsed", el("span", { id: "elapsed" })],
    ];
    if (i.priority) rows.push(["priority", i.priority]);
    if (i.externalId) rows.push(["external id", i.externalId]);
    if (i.parentInstanceId) {
      rows.push(["parent", el("a", { href: "./" + encodeURIComponent(i.parentInstanceId) }, i.parentInstanceId)]);
    }
    $("summary").replaceChildren(...rows.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
    renderElapsed();
    const error = $("instance-error");
    error.hidden = !i.error;
    if (i.error) {
      error.querySelector("summary").textContent = `${i.error.code || "error"}: ${i.error.message || ""}`;
      error.querySelector("pre").textContent = json(i.error);
    }
    renderProgress();
  }

  // Elapsed time: from the start to the end, or to now while the instance has not ended (counted here
  // every second: the status changes only when a node does). Paused counts too: it is time taken.
  function elapsedMs() {
    const i = state.instance || {};
    if (!i.startedAt) return null;
    if (i.finishedAt) return i.executionTimeMs ?? between(i.startedAt, i.finishedAt);
    return Math.max(between(i.startedAt, null), i.executionTimeMs || 0);
  }

  function renderElapsed() {
    const shown = $("elapsed");
    if (shown) shown.textContent = duration(elapsedMs());
    const selected = state.nodes.get(state.selected);
    const took = $("node-duration");
    if (selected && took && selected.data.status === "running") took.textContent = duration(nodeMs(selected.data));
  }

  function startClock() {
    if (state.clock === null) state.clock = setInterval(renderElapsed, TICK_MS);
  }

  function stopClock() {
    if (state.clock !== null) clearInterval(state.clock);
    state.clock = null;
    renderElapsed();
  }

  function setLive(mode, why) {
    const live = $("live");
    live.dataset.live = mode;
    live.textContent = { events: "live (events)", polling: "live (polling)", finished: "finished" }[mode] || mode;
    live.title = why || "";
  }

  // ---------------------------------------------------------------- details

  function select(nodeId) {
    state.selected = nodeId;
    for (const [id, entry] of state.nodes) entry.g.setAttribute("class", "node" + (id === nodeId ? " selected" : ""));
    renderDetails();
    loadDetails();
  }

  // fresh output, error and checkpoint of every node (events carry only states)
  function loadDetails() {
    api(base + "/nodes")
      .then((body) => (body.nodes || []).forEach((n) => applyNode(n, true)))
      .catch((e) => showProblem(e));
  }

  function field(label, value, cls) {
    return [el("dt", {}, label), el("dd", cls ? { class: cls } : {}, value)];
  }

  function block(label, value) {
    if (value === undefined || value === null) return [];
    return [el("h3", {}, label), el("pre", { class: label === "error" ? "error" : "" }, json(value))];
  }

  function nodeMs(d) {
    return d.startedAt && (d.finishedAt || d.status === "running") ? between(d.startedAt, d.finishedAt) : null;
  }

  function renderDetails() {
    const entry = state.nodes.get(state.selected);
    if (!entry) return;
    const d = entry.data, s = entry.spec;
    const reason = skipReason(d);
    // a redraw of the same map keeps the squares it shows until the next read replaces them, so
    // they never blink back to "loading…" between two reads
    const shown = $("items");
    const itemsBox =
      shown && shown.dataset.map === s.id
        ? shown
        : el("div", { id: "items", class: "items", "data-map": s.id }, el("p", { class: "hint" }, "loading…"));
    $("details").replaceChildren(
      el("h2", {}, s.id),
      s.name && s.name !== s.id ? el("p", { class: "hint" }, s.name) : "",
      el(
        "dl",
        {},
        ...field("status", el("span", { class: "badge", "data-status": d.status }, d.status)),
        ...(reason ? field("skipped", reason, "skip-reason") : []),
        ...field("executor", s.executor || s.type || "—"),
        ...field("attempt", d.attempt ?? "—"),
        ...field("worker", d.workerId || "—"),
        ...((d.status === "queued" || d.status === "waiting") && d.waitingFor
          ? field("waiting", waitingText(d.waitingFor), "waiting-for")
          : []),
        ...(d.items ? field("items", `${d.items.done}/${d.items.total} done`, "item-count") : []),
        ...field("queued", time(d.queuedAt)),
        ...field("started", time(d.startedAt)),
        ...field("finished", time(d.finishedAt)),
        ...field("duration", el("span", { id: "node-duration" }, duration(nodeMs(d)))),
        ...field("depends on", (s.dependsOn || []).join(", ") || "—")
      ),
      ...(d.items ? [el("h3", {}, "items"), itemsBox] : []),
      ...block("error", d.error),
      ...block("output", d.output),
      ...block("last checkpoint", d.lastCheckpoint),
      ...block("config", s.config)
    );
    if (s.type === "map" && d.items) loadItems(s.id); // the squares are redrawn with the details
  }

  // A map's items, one square each, coloured by state (the first ITEMS_SHOWN; the counters say the rest)
  function loadItems(mapId) {
    api(base + "/nodes/" + encodeURIComponent(mapId) + "/items?limit=" + ITEMS_SHOWN)
      .then((body) => {
        const box = $("items");
        if (!box || state.selected !== mapId) return;
        const items = body.items || [];
        const byStatus = (state.nodes.get(mapId).data.items || {}).byStatus || {};
        box.replaceChildren(
          el("p", { class: "item-states" }, Object.entries(byStatus).map(([s, n]) => `${n} ${s}`).join(" · ")),
          el(
            "ol",
            { class: "item-grid" },
            ...items.map((it) =>
              el("li", { "data-status": it.status, "data-index": it.index, title: `[${it.index}] ${it.status}` })
            )
          ),
          body.next !== null && body.next !== undefined ? el("p", { class: "hint" }, `first ${items.length} shown`) : ""
        );
      })
      .catch((e) => showProblem(e));
  }

  // ---------------------------------------------------------------- log

  function addLog(line) {
    if (!line || !line.message) return;
    if (line.id !== undefined) {
      if (state.logIds.has(line.id)) return;
      state.logIds.add(line.id);
    }
    const list = $("log");
    const node = line.nodeId
      ? el("a", { class: "node-ref", href: "#", onclick: (e) => (e.preventDefault(), select(line.nodeId)) }, line.nodeId)
      : "";
    list.append(
      el(
        "li",
        { "data-level": line.level || "info" },
        el("time", {}, line.timestamp ? new Date(line.timestamp).toLocaleTimeString() : ""),
        " ",
        el("span", { class: "level" }, line.level || ""),
        " ",
        node,
        node ? " " : "",
        line.message
      )
    );
    while (list.children.length > LOG_LINES) list.firstElementChild.remove();
  }

  async function refreshLogs() {
    const body = await api(base + "/logs?limit=1000");
    (body.logs || []).forEach(addLog);
  }

  function showProblem(error) {
    const p = $("problem") || el("p", { id: "problem", class: "error" });
    p.textContent = String(error.message || error);
    document.querySelector(".summary").append(p);
  }

  // ---------------------------------------------------------------- live updates

  async function refresh(guarded) {
    const [status, body] = await Promise.all([api(base + "/status"), api(base + "/nodes")]);
    (body.nodes || []).forEach((n) => applyNode(n, guarded));
    applyStatus(status);
  }

  function startEvents() {
    setLive("events");
    const source = new EventSource(apiBase + base + "/events");
    state.source = source;
    const parse = (e) => {
      try {
        return JSON.parse(e.data);
      } catch (_) {
        return null;
      }
    };
    source.addEventListener("node", (e) => {
      const data = parse(e);
      if (data) applyNode(data, false);
    });
    source.addEventListener("status", (e) => applyStatus(parse(e)));
    source.addEventListener("log", (e) => addLog(parse(e)));
    source.addEventListener("end", (e) => {
      source.close();
      state.source = null;
      const data = parse(e);
      if (data && data.status) applyStatus(data);
      finish();
    });
    source.onopen = () => refresh(true).catch(showProblem); // catch up on what happened before the stream
    source.onerror = () => {
      if (state.source !== source) return;
      source.close(); // no automatic reconnects: poll instead, which always works
      state.source = null;
      if (!state.finished) startPolling("the event stream is unavailable");
    };
  }

  function startPolling(why) {
    setLive("polling", why);
    const tick = async () => {
      state.poller = null;
      try {
        await refresh(false);
        if (state.ticks++ % 2 === 0) await refreshLogs();
        $("problem")?.remove(); // a failed poll is forgotten once one succeeds
      } catch (e) {
        showProblem(e);
      }
      if (!state.finished) state.poller = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  let finishing = false;
  function finish() {
    if (state.finished || finishing) return;
    finishing = true;
    state.finished = true;
    stopClock();
    if (state.poller) clearTimeout(state.poller);
    if (state.source) state.source.close();
    setLive("finished");
    // the last snapshot: outputs, errors and the log lines written with the end
    Promise.all([api(base + "/nodes"), refreshLogs()])
      .then(([body]) => (body.nodes || []).forEach((n) => applyNode(n, false)))
      .catch(showProblem);
  }

  async function start() {
    const instance = await api(base);
    state.instance = instance;
    document.title = `${instance.workflow} ${instanceId} · orchestrator`;
    $("title").replaceChildren(el("span", {}, instance.workflow + " "), el("code", {}, instanceId));
    const definition = await api(
      "/definitions/" + encodeURIComponent(instance.workflow) + "/" + encodeURIComponent(instance.version)
    );
    draw(definition.nodes || []);
    applyStatus(instance);
    if (state.finished) return; // finish() loaded the final state
    startClock();
    await refresh(true);
    await refreshLogs();
    if (state.finished) return;
    // EventSource sends the session cookie like any same-origin request: no token needed here
    if (params.get("live") === "poll" || !window.EventSource) startPolling("");
    else startEvents();
  }

  start().catch((e) => {
    setLive("error", String(e.message || e));
    showProblem(e);
  });
})();
