"""Collecting Content-Security-Policy violations in Chromium pages (Playwright)."""

from __future__ import annotations

# Added with page.add_init_script: Playwright injects it, not the page, so the CSP does not
# apply to it. Every `securitypolicyviolation` lands in `window.__csp`.
COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push({
    directive: event.violatedDirective,
    blocked: event.blockedURI,
    source: event.sourceFile,
    line: event.lineNumber,
    sample: event.sample,
  });
});
"""
# Violation events are queued as tasks: let the ones a page caused arrive before reading.
READ_VIOLATIONS = "() => new Promise((done) => setTimeout(() => done(window.__csp), 100))"
