/*
 * The outbox page: every 5 seconds, fetch only the cards newer than the newest shown
 * (/outbox/new?after=<id>) and put them on top. Nothing already on the page is
 * re-rendered, so a card a reader opened (or closed) stays as they left it.
 */
(function () {
  "use strict";
  var list = document.getElementById("captures");
  if (!list) { return; }

  function poll() {
    fetch("/outbox/new?after=" + encodeURIComponent(list.dataset.latest || "0"), {cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { return; }
        var latest = response.headers.get("X-Outbox-Latest");
        return response.text().then(function (fragment) {
          if (fragment.trim()) {
            var empty = document.getElementById("no-messages");
            if (empty) { empty.remove(); }
            list.insertAdjacentHTML("afterbegin", fragment);
          }
          if (latest) { list.dataset.latest = latest; }
        });
      })
      .catch(function () { /* the server is restarting: try again at the next tick */ })
      .then(function () { setTimeout(poll, 5000); });
  }

  setTimeout(poll, 5000);
})();
