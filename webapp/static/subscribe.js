/*
 * Rapport subscription form, embedded in any page:
 *
 *   <script src="https://rapport.example/static/subscribe.js" data-workspace="ws_123"></script>
 *
 * Inserts an iframe with the hosted form (/s/<workspace>?embed=1) right where the script
 * tag stands, and grows it to the form's height when the form says how tall it is.
 * Optional: data-height="520" (initial height in pixels), data-title="Newsletter".
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.getAttribute("data-workspace")) {
    if (window.console) { console.error("subscribe.js: add data-workspace=\"<workspace id>\" to the script tag"); }
    return;
  }
  // The form lives next to this script: https://host/prefix/static/subscribe.js -> https://host/prefix
  var base = script.src.replace(/\/static\/subscribe\.js(\?.*)?$/, "");
  var frame = document.createElement("iframe");
  frame.src = base + "/s/" + encodeURIComponent(script.getAttribute("data-workspace")) + "?embed=1";
  frame.title = script.getAttribute("data-title") || "Subscribe";
  frame.style.width = "100%";
  frame.style.maxWidth = "600px";
  frame.style.border = "0";
  frame.style.height = (parseInt(script.getAttribute("data-height"), 10) || 560) + "px";
  frame.setAttribute("loading", "lazy");
  script.parentNode.insertBefore(frame, script.nextSibling);

  var origin = new URL(base, window.location.href).origin;
  window.addEventListener("message", function (event) {
    // Only our own frame may resize itself.
    if (event.origin !== origin || event.source !== frame.contentWindow) { return; }
    var height = event.data && event.data.rapportSubscribeHeight;
    if (typeof height === "number" && height > 0 && height < 5000) {
      frame.style.height = Math.ceil(height) + "px";
    }
  });
})();
