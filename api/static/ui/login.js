// The sign-in form: posts the token as JSON (never in a URL), gets the session cookie, goes back.
"use strict";

(() => {
  const root = document.body.dataset.root || "";
  const form = document.getElementById("login");
  const message = document.getElementById("login-message");

  // back to the page that sent us here, but only to one of ours: never an open redirect
  function destination() {
    const next = new URLSearchParams(window.location.search).get("next") || "";
    return next.startsWith(root + "/ui/") && !next.startsWith("//") ? next : root + "/ui/";
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    message.textContent = "";
    const input = document.getElementById("login-token");
    try {
      const response = await fetch(root + "/ui/login", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ token: input.value }),
        credentials: "same-origin",
      });
      if (response.ok) {
        window.location.replace(destination());
        return;
      }
      message.textContent = response.status === 401 ? "That token is not accepted." : "HTTP " + response.status;
    } catch (err) {
      message.textContent = "The server did not answer (" + err.message + ").";
    }
    input.select();
  });
})();
