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
})();
