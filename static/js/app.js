// collectZ: small progressive enhancements on top of htmx. Every page works without this file.
(function () {
  "use strict";

  var body = document.body;
  var refreshSeconds = parseInt((document.querySelector('meta[name="csrf-refresh-seconds"]') || {}).content || "0", 10);
  var lastRefresh = Date.now();

  // CSRF tokens expire; a page left open must keep working, so refresh the token before it does.
  function applyToken(token) {
    body.setAttribute("hx-headers", JSON.stringify({ "X-CSRFToken": token }));
    document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) { input.value = token; });
    lastRefresh = Date.now();
  }

  function refreshToken() {
    return fetch(body.dataset.csrfUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) { applyToken(data.token); });
  }

  function tokenIsStale() {
    return refreshSeconds > 0 && Date.now() - lastRefresh >= refreshSeconds * 1000;
  }

  if (refreshSeconds > 0 && body.dataset.csrfUrl) {
    setInterval(function () { if (tokenIsStale()) refreshToken().catch(function () {}); }, Math.max(1000, refreshSeconds * 250));
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && tokenIsStale()) refreshToken().catch(function () {});
    });
    // A plain form submitted with a stale token: refresh first, then submit.
    document.addEventListener("submit", function (evt) {
      var form = evt.target;
      if (form.dataset.csrfRefreshed) { delete form.dataset.csrfRefreshed; return; }
      if (!tokenIsStale() || form.hasAttribute("hx-post")) return;
      evt.preventDefault();
      refreshToken().finally(function () { form.dataset.csrfRefreshed = "1"; form.requestSubmit(evt.submitter); });
    }, true);
    // An htmx request with a stale token waits for a fresh one.
    document.addEventListener("htmx:confirm", function (evt) {
      if (!tokenIsStale()) return;
      evt.preventDefault();
      refreshToken().finally(function () {
        evt.detail.issueRequest(true);
      });
    });
  }

  // Errors that htmx does not swap (403, 404, 429, 5xx) become a toast with the server's message.
  function toast(message, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    el.setAttribute("role", "status");
    el.textContent = message;
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 8000);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    var message = "Something went wrong (" + xhr.status + ").";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var node = doc.querySelector("[data-error-message]");
      if (node) message = node.textContent.trim();
    } catch (e) { /* keep the generic message */ }
    toast(message, "error");
  });
  document.addEventListener("htmx:sendError", function () { toast("The server could not be reached.", "error"); });

  // Flash toasts fade after a while.
  document.querySelectorAll("#toasts .toast").forEach(function (el) { setTimeout(function () { el.remove(); }, 8000); });
  document.addEventListener("htmx:oobAfterSwap", function () {
    document.querySelectorAll("#toasts .toast:not([data-timed])").forEach(function (el) {
      el.dataset.timed = "1";
      setTimeout(function () { el.remove(); }, 8000);
    });
  });
})();

// "Copy" buttons (`data-copy` = selector of the field to copy). Hidden until this script shows them; without it
// the field can be selected by hand. `data-copy-delivered` is a URL told (POST how=copied) that it was copied.
(function () {
  "use strict";

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }

  function copyText(field) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(field.value);
    // Plain-http LAN installs have no clipboard API: fall back to selecting the field.
    field.select();
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function showButtons(root) {
    root.querySelectorAll("[data-copy][hidden]").forEach(function (btn) { btn.hidden = false; });
  }

  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest("[data-copy]");
    if (!btn) return;
    var field = document.querySelector(btn.dataset.copy);
    if (!field) return;
    copyText(field).then(function () {
      btn.textContent = "Copied";
      if (!btn.dataset.copyDelivered) return;
      var body = new FormData();
      body.append("how", "copied");
      fetch(btn.dataset.copyDelivered, { method: "POST", credentials: "same-origin", body: body,
                                         headers: { "X-CSRFToken": csrfToken() } });
    }, function () {
      field.select();
      btn.textContent = "Select and copy by hand";
    });
  });

  showButtons(document);
  document.addEventListener("htmx:load", function (evt) { showButtons(evt.detail.elt); });
})();
