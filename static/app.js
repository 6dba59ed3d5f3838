// ModelDesk page behaviours. No inline scripts or handlers anywhere (the CSP forbids them):
// everything the pages do beyond htmx attributes lives here, keyed on data-* attributes.
(function () {
  "use strict";

  // <textarea data-enter-submits>: Enter sends the form, Shift+Enter starts a new line.
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (!(field instanceof HTMLTextAreaElement) || !field.hasAttribute("data-enter-submits")) return;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (field.form && field.value.trim() !== "") field.form.requestSubmit();
  });

  // <button data-confirm="…">: ask before a destructive submit (works with or without htmx).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // <button data-copy="ID">: copy the value of the field with that id (a secret shown once) and
  // say so in the element "ID-status". The Clipboard API exists only in a secure context (HTTPS,
  // localhost); elsewhere the field is selected for the older copy command, or for the user.
  function copyBySelection(field) {
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (error) { return false; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var id = button.getAttribute("data-copy");
    var field = document.getElementById(id);
    var status = document.getElementById(id + "-status");
    if (!field) return;
    function report(copied) {
      if (status) status.textContent = copied ? "Copied." : "Not copied: the secret is selected, press Ctrl+C (⌘C on a Mac).";
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        function () { report(true); },
        function () { report(copyBySelection(field)); }
      );
    } else {
      report(copyBySelection(field));
    }
  });

  // A secret shown once ([data-once-secret]) leaves with the page: the back/forward cache keeps
  // a page as it was, and would otherwise show the secret again on Back.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-once-secret]").forEach(function (secret) { secret.remove(); });
  });

  // <a data-slow="…">: a request that can take seconds (a provider's model list) says so while
  // it runs, and can be cancelled (the Cancel button or Esc): htmx aborts it, the page stays.
  var slowSource = null;

  function slowBar() { return document.getElementById("slow-request"); }

  function endSlow() {
    slowSource = null;
    if (slowBar()) slowBar().hidden = true;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail.elt;
    if (!source || !source.hasAttribute || !source.hasAttribute("data-slow") || !slowBar()) return;
    slowSource = source;
    slowBar().querySelector("[data-slow-text]").textContent = source.getAttribute("data-slow");
    slowBar().hidden = false;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt === slowSource) endSlow();
  });

  function cancelSlow() {
    if (!slowSource) return;
    htmx.trigger(slowSource, "htmx:abort");
    endSlow();
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-slow-cancel]")) cancelSlow();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && slowSource) cancelSlow();
  });

  // Provider form: the URLs requests will go to, live as the base URL and prefix are typed,
  // and a one-click fix for a base URL that already ends with the prefix (…/v1 + /v1).
  // The rule mirrors the server's (validation.base_url_without_prefix), which has the last word.
  function baseWithoutPrefix(base, prefix) {
    prefix = prefix.replace(/\/+$/, "");
    if (prefix.charAt(0) !== "/") return null;
    var url;
    try { url = new URL(base); } catch (error) { return null; }
    if (url.search || url.hash || !url.pathname.replace(/\/+$/, "").endsWith(prefix)) return null;
    return base.slice(0, base.length - prefix.length);
  }

  function updateEndpointPreview(form) {
    var preview = form.querySelector("[data-endpoint-preview]");
    var baseField = form.elements.namedItem("base_url");
    var prefixField = form.elements.namedItem("api_prefix");
    if (!preview || !baseField || !prefixField) return;
    var base = baseField.value.trim().replace(/\/+$/, "");
    var endpoint = base + prefixField.value;
    preview.querySelectorAll("[data-endpoint-path]").forEach(function (code) {
      code.textContent = endpoint + code.getAttribute("data-endpoint-path");
    });
    var fixed = baseWithoutPrefix(base, prefixField.value);
    var warning = preview.querySelector("[data-prefix-twice]");
    var button = preview.querySelector("[data-fix-base-url]");
    warning.hidden = fixed === null;
    button.setAttribute("data-fix-base-url", fixed || "");
    button.querySelector("code").textContent = fixed || "";
  }

  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field.form || (field.name !== "base_url" && field.name !== "api_prefix")) return;
    updateEndpointPreview(field.form);
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fix-base-url]");
    if (!button || !button.form) return;
    var baseField = button.form.elements.namedItem("base_url");
    baseField.value = button.getAttribute("data-fix-base-url");
    updateEndpointPreview(button.form);
    baseField.focus();
  });

  // After htmx swaps in a whole page (a boosted link or form, or the GET that follows an
  // HX-Location after a save), bring its flash message into view: the swap keeps the old
  // scroll position, so "Saved provider …" would otherwise sit above the fold.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target !== document.body) return;
    var flashes = document.getElementById("flashes");
    if (flashes && flashes.querySelector(".flash")) flashes.scrollIntoView({ block: "nearest" });
  });
})();
