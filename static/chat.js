// The chat page's behaviours, on top of htmx and its SSE extension. No inline scripts or
// handlers (the CSP forbids them): everything is keyed on ids and data-* attributes.
(function () {
  "use strict";

  var PHONE = window.matchMedia("(max-width: 800px)");
  // How near the end of the transcript still counts as "at the bottom": less than one turn
  // of a mouse wheel, so scrolling up by any amount stops the following.
  var FOLLOW_SLACK_PX = 40;
  var following = true;
  // Where toBottom() left the transcript: a scroll event that is not above it was ours (or
  // the text grew under it), not the reader scrolling up.
  var followedTo = 0;

  function composer() { return document.getElementById("composer"); }
  function transcript() { return document.getElementById("transcript"); }
  function liveReplies() { return document.querySelectorAll("#transcript [sse-connect]"); }

  // The transcript scrolls inside the page (the page itself does not, so the top bar stays).
  function nearBottom(log) {
    return log.scrollHeight - (log.scrollTop + log.clientHeight) < FOLLOW_SLACK_PX;
  }

  function toBottom() {
    var log = transcript();
    if (!log) return;
    log.scrollTop = log.scrollHeight;
    followedTo = log.scrollTop;
  }

  function refreshBudget() {
    var meter = document.getElementById("budget");
    if (meter) htmx.trigger(meter, "budget-refresh");
  }

  function say(text) {
    var status = document.getElementById("composer-status");
    if (status) status.textContent = text;
  }

  // The conversation list folds away on phones and stays open on wider screens.
  function fitSidebar() {
    document.querySelectorAll("[data-sidebar]").forEach(function (fold) {
      fold.open = !PHONE.matches;
    });
  }
  PHONE.addEventListener("change", fitSidebar);

  // A new page (first load or a boosted navigation): newest message in view.
  htmx.onLoad(function (elt) {
    // chat.js loads on every page: act only where there is a transcript.
    if (!document.getElementById("transcript")) return;
    if (elt === document.body || (elt.querySelector && elt.querySelector("#transcript"))) {
      fitSidebar();
      following = true;
      toBottom();
    } else if (following && elt.closest && elt.closest("#transcript")) {
      // New content in the transcript (a reply's end, taller with its footer's stats and
      // buttons; the last turn's controls after it): follow it too.
      toBottom();
    }
  });

  // Follow a streaming reply while the reader is at the bottom; scrolling up to read stops
  // it, scrolling back down resumes it. (Scroll events do not bubble: listen in capture.)
  document.addEventListener("scroll", function (event) {
    var log = event.target;
    if (log.id === "transcript") following = log.scrollTop >= followedTo || nearBottom(log);
  }, { capture: true, passive: true });
  document.body.addEventListener("htmx:sseMessage", function () {
    if (following) toBottom();
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "transcript") {
      following = true;
      toBottom();
    }
  });

  // After a send: empty the message box, keep the focus there, re-count the budget.
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "composer" || !event.detail.successful) return;
    var box = form.querySelector("textarea[name=content]");
    if (box) {
      box.value = "";
      box.focus();
    }
    say("");
    refreshBudget();
  });

  // A failed send brings the form back (errors, typed text kept): focus the message again.
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.elt && event.detail.elt.id === "composer") {
      var box = event.detail.elt.querySelector("textarea[name=content]");
      if (box) box.focus();
    }
  });

  // A reply that ended: the transcript changed, so does the budget.
  document.body.addEventListener("htmx:sseClose", refreshBudget);

  document.body.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    // One reply at a time: a message sent while one streams would not see it.
    if (elt && elt.id === "composer" && liveReplies().length > 0) {
      event.preventDefault();
      say("Wait for the reply to finish, or press Stop.");
      return;
    }
    if (elt && elt.hasAttribute && elt.hasAttribute("data-stop")) {
      event.preventDefault();
      stop(elt, event.detail.issueRequest);
    }
  });

  // Stop: freeze the text shown now and close the stream; the button's own request stops
  // the reply on the server (wherever it runs) and answers with it as saved.
  function stop(button, issueRequest) {
    var message = button.closest(".message");
    var live = message && message.querySelector("[sse-connect]");
    button.disabled = true;
    if (live) freeze(live);
    issueRequest(true);
  }

  // Swapping the sse-connect element out through htmx runs htmx's cleanup, which closes
  // its EventSource (a plain DOM removal would leave the connection open).
  function freeze(live) {
    var text = live.querySelector(".reply-text");
    var copy = document.createElement("div");
    copy.className = "reply-text";
    copy.textContent = text ? text.textContent : "";
    live.removeAttribute("sse-connect");
    htmx.swap(live, copy.outerHTML, { swapStyle: "outerHTML" });
  }

  // An EventSource that the server closed for good (204: the reply is already over): stop
  // the extension's retries and show the message as the server saved it.
  document.body.addEventListener("htmx:sseError", function (event) {
    var live = event.target;
    var source = event.detail && event.detail.source;
    if (!source || source.readyState !== EventSource.CLOSED || !live.getAttribute) return;
    var url = live.getAttribute("data-message-url");
    var message = live.closest(".message");
    live.removeAttribute("sse-connect");
    if (url && message) htmx.ajax("GET", url, { source: message, target: message, swap: "outerHTML" });
  });

  // The model filter: hide the options (and whole providers) whose text does not contain
  // what was typed. Listened in capture on the document and stopped there, so typing in it
  // does not look like a draft change to the budget meter and the request preview.
  document.addEventListener("input", function (event) {
    var filter = event.target;
    if (!filter.hasAttribute || !filter.hasAttribute("data-model-filter")) return;
    event.stopPropagation();
    var select = document.getElementById(filter.getAttribute("data-model-filter"));
    if (select) filterOptions(select, filter.value.trim().toLowerCase());
  }, { capture: true });

  function filterOptions(select, words) {
    select.querySelectorAll("optgroup").forEach(function (group) {
      var shown = 0;
      var provider = group.label.toLowerCase();
      group.querySelectorAll("option").forEach(function (option) {
        var text = provider + " " + option.textContent.toLowerCase();
        option.hidden = words !== "" && text.indexOf(words) === -1;
        if (!option.hidden) shown += 1;
      });
      group.hidden = shown === 0;
    });
  }

  // Enter in the filter must not send the message (an input in a form submits it).
  document.addEventListener("keydown", function (event) {
    var filter = event.target;
    if (event.key === "Enter" && filter.hasAttribute && filter.hasAttribute("data-model-filter")) {
      event.preventDefault();
    }
  });

  // Admins: the warning and fix link of the picked model, when it is marked unusable.
  document.addEventListener("change", function (event) {
    if (event.target.id !== "llm_model_id") return;
    var picked = event.target.value;
    document.querySelectorAll("[data-picker-warning]").forEach(function (warning) {
      warning.hidden = warning.getAttribute("data-picker-warning") !== picked;
    });
  });

  // Esc in the composer stops the reply that is streaming.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.isComposing) return;
    var form = composer();
    if (!form || !form.contains(document.activeElement)) return;
    var button = document.querySelector("#transcript .live [data-stop]:not([disabled])");
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
})();
