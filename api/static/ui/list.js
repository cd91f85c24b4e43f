// The instance list: the newest instances (optionally of one status), each linking to its graph page.
"use strict";

(() => {
  const { api, root, params, el, time } = Orch;
  const page = root + "/ui/instances/";
  const status = document.getElementById("filter-status");
  const message = document.getElementById("list-message");
  status.value = params.get("status") || "";

  document.getElementById("open").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = document.getElementById("open-id").value.trim();
    if (id) window.location.href = page + encodeURIComponent(id);
  });
  status.addEventListener("change", () => {
    const query = status.value ? "?status=" + encodeURIComponent(status.value) : "";
    history.replaceState(null, "", window.location.pathname + query);
    load();
  });

  function row(i) {
    return el(
      "tr",
      { "data-instance-id": i.id },
      el("td", {}, el("a", { href: page + encodeURIComponent(i.id) }, el("code", {}, i.id))),
      el("td", {}, (i.workflow || "") + " " + (i.version || "")),
      el("td", {}, el("span", { class: "badge", "data-status": i.status }, i.status)),
      el("td", {}, time(i.createdAt)),
      el("td", {}, time(i.finishedAt))
    );
  }

  async function load() {
    const query = new URLSearchParams({ limit: "50" });
    if (status.value) query.set("status", status.value);
    try {
      const body = await api("/instances?" + query);
      const items = Array.isArray(body) ? body : body.instances || body.items || [];
      document.querySelector("#instances tbody").replaceChildren(...items.map(row));
      message.textContent = items.length ? "" : "No instances.";
    } catch (e) {
      message.textContent = "The instance list is unavailable (" + e.message + "); open one by id above.";
    }
  }

  load();
  setInterval(load, 5000);
})();
