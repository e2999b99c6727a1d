// The workspace UI's one script, bundled by esbuild into webapp/static/bundle/main.js (`make setup`).
//
// htmx swaps the fragments the server renders. It is set up here for the pages' Content-Security-Policy
// (script-src 'self', style-src 'self': no eval, no inline script or style) and their CSRF check.
import htmx from "htmx.org";

// hx-on handlers and "js:" values would need eval, which the policy forbids: htmx does not even try.
htmx.config.allowEval = false;
// A fragment's <script> would be inline script: the policy blocks it, so htmx does not insert it.
htmx.config.allowScriptTags = false;
// htmx would add its request-indicator rules as an inline <style>; they live in workspace.css instead.
htmx.config.includeIndicatorStyles = false;

// Flask-WTF refuses a POST without the token; a page carries it in <meta name="csrf-token">, and
// every htmx request sends it back as the header Flask-WTF reads. htmx 2 sends requests to this
// site only (selfRequestsOnly), so the token never leaves it.
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.querySelector('meta[name="csrf-token"]');
  if (token) {
    event.detail.headers["X-CSRFToken"] = token.content;
  }
});

// For the small ES modules pages add beside this bundle, and for tests checking that it ran.
window.htmx = htmx;
