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

  // After htmx swaps in a whole page (a boosted link or form, or the GET that follows an
  // HX-Location after a save), bring its flash message into view: the swap keeps the old
  // scroll position, so "Saved provider …" would otherwise sit above the fold.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target !== document.body) return;
    var flashes = document.getElementById("flashes");
    if (flashes && flashes.querySelector(".flash")) flashes.scrollIntoView({ block: "nearest" });
  });
})();
