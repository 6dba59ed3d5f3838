// The send button follows the budget meter: while the draft is over the model's limit, the
// meter (templates/chat/_budget.html) holds the reason in [data-over-budget]; Send is then
// disabled and described by it, and Enter cannot send either. No inline scripts (CSP).
(function () {
  "use strict";

  function overBudgetReason() { return document.querySelector("#budget [data-over-budget]"); }

  function followMeter() {
    var send = document.querySelector("#composer .send");
    if (!send) return;
    var reason = overBudgetReason();
    if (reason) {
      send.disabled = true;
      send.setAttribute("aria-describedby", reason.id);
      send.setAttribute("data-budget-blocked", "");
    } else if (send.hasAttribute("data-budget-blocked")) {
      // Only undo what this did: Send may be disabled for other reasons (no model enabled).
      send.disabled = false;
      send.removeAttribute("aria-describedby");
      send.removeAttribute("data-budget-blocked");
    }
  }

  // After the meter is swapped, and after any request that re-enabled Send on its way out
  // (the composer's hx-disabled-elt).
  document.addEventListener("htmx:afterSettle", followMeter);
  document.addEventListener("htmx:afterRequest", followMeter);

  // Enter and Ctrl+Enter send with requestSubmit(), which a disabled button does not stop:
  // refuse the submit itself, before htmx (listening on the form) sees it.
  document.addEventListener("submit", function (event) {
    if (event.target.id !== "composer" || !overBudgetReason()) return;
    event.preventDefault();
    event.stopImmediatePropagation();
  }, true);
})();
