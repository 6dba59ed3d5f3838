// Copy buttons in the chat: on each code block of a reply, and in a finished message's footer
// ("Copy": the text as shown; "Copy Markdown": a reply as stored, from its <template>).
// No inline scripts or handlers (the CSP forbids them): one click listener on the document.
(function () {
  "use strict";

  var NOTE_MS = 2000;

  // The code blocks' buttons are made here, not in the server's HTML: the <pre> comes from
  // model text through the sanitizer, which stays the last word on that markup, and a button
  // that only works with JavaScript appears only where JavaScript runs.
  function addCodeButtons(root) {
    if (!root.querySelectorAll) return;
    root.querySelectorAll(".markdown pre").forEach(function (pre) {
      if (pre.parentElement.classList.contains("code-block")) return;
      var block = document.createElement("div");
      block.className = "code-block";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button copy-code";
      button.setAttribute("data-copy-text", "code");
      button.setAttribute("aria-label", "Copy code");
      button.textContent = "Copy";
      pre.replaceWith(block);
      block.append(button, pre);
    });
  }
  htmx.onLoad(addCodeButtons);

  // A code block's text without the newline that ends every fenced block, so a pasted
  // command does not run before it is read.
  function codeText(button) {
    var pre = button.closest(".code-block").querySelector("pre");
    return pre.textContent.replace(/\n$/, "");
  }

  // The message's text as the browser lays it out, less the code blocks' own buttons.
  function shownText(message) {
    var text = message.querySelector(".markdown, .user-text");
    if (!text) return "";
    text.classList.add("copy-reading");
    var shown = text.innerText;
    text.classList.remove("copy-reading");
    return shown;
  }

  function markdownText(message) {
    var source = message.querySelector("template[data-copy-markdown]");
    return source ? source.content.textContent : "";
  }

  function textFor(button) {
    var kind = button.getAttribute("data-copy-text");
    if (kind === "code") return codeText(button);
    var message = button.closest(".message");
    return kind === "markdown" ? markdownText(message) : shownText(message);
  }

  // The button says what happened for a moment, then shows its own label again.
  var labels = new WeakMap();
  var timers = new WeakMap();
  function note(button, text) {
    if (!labels.has(button)) {
      labels.set(button, { text: button.textContent, name: button.getAttribute("aria-label") });
    }
    var label = labels.get(button);
    button.textContent = text;
    if (label.name) button.setAttribute("aria-label", text);
    window.clearTimeout(timers.get(button));
    timers.set(button, window.setTimeout(function () {
      button.textContent = label.text;
      if (label.name) button.setAttribute("aria-label", label.name);
      labels.delete(button);
    }, NOTE_MS));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy-text]");
    if (!button) return;
    // The clipboard API exists only on secure pages (https, or localhost).
    if (!navigator.clipboard || !navigator.clipboard.writeText) {
      note(button, "Copy unavailable");
      return;
    }
    navigator.clipboard.writeText(textFor(button)).then(
      function () { note(button, "Copied"); },
      function () { note(button, "Copy failed"); }
    );
  });
})();
