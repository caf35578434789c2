// DriftGuard dashboard: keeps an open page live. Everything works without this script; with
// it, the parts of a page marked data-live-region are fetched again when the server announces
// an event (detected, changed, resolved) or a finished scan on GET /api/v1/events/stream.
// No inline script, no third-party code: the Content-Security-Policy allows only this file.
(function () {
  "use strict";
  // the drifts table's "select all": checks every open drift of the page
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.matches && t.matches("[data-select-all]")) {
      var table = t.closest("table");
      if (table) {
        table.querySelectorAll("input[name=episode]").forEach(function (box) {
          box.checked = t.checked;
        });
      }
    }
  });
})();

(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.live !== "on" || !window.EventSource || !window.fetch) {
    return;
  }
  var regions = document.querySelectorAll("[data-live-region]");
  if (regions.length === 0) {
    return;
  }
  var status = document.getElementById("live-status");
  var timer = null;
  var pending = {};
  var inFlight = false;
  var again = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function time() {
    return new Date().toLocaleTimeString();
  }

  function refresh() {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    var what = Object.keys(pending)
      .map(function (k) { return pending[k] + " " + k; })
      .join(", ");
    pending = {};
    fetch(window.location.href, {
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
      redirect: "manual"
    })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-region]").forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          if (fresh) {
            // a selection of drifts survives the update (those still listed stay checked)
            var checked = {};
            old.querySelectorAll("input[name=episode]:checked").forEach(function (box) {
              checked[box.value] = true;
            });
            var node = document.importNode(fresh, true);
            node.querySelectorAll("input[name=episode]").forEach(function (box) {
              box.checked = checked[box.value] === true;
            });
            old.replaceWith(node);
          }
        });
        body.dataset.updated = String(Date.now());
        say("Updated at " + time() + (what ? " (" + what + ")" : ""));
      })
      .catch(function () {
        say("Could not update this page; reload it to see the latest.");
      })
      .then(function () {
        inFlight = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function schedule() {
    if (timer) {
      clearTimeout(timer);
    }
    timer = setTimeout(refresh, 150);
  }

  // one stream per open page; a page left (or kept in the back/forward cache) gives its
  // connection back at once: browsers allow only a few per server
  var source = null;
  function connect() {
    source = new EventSource("/api/v1/events/stream");
    ["detected", "changed", "resolved", "scan", "lagged"].forEach(function (kind) {
      source.addEventListener(kind, function () {
        pending[kind] = (pending[kind] || 0) + 1;
        schedule();
      });
    });
    source.addEventListener("open", function () {
      body.dataset.stream = "open";
      say("Live: this page updates by itself.");
    });
    source.addEventListener("error", function () {
      body.dataset.stream = "reconnecting";
      say("Live updates interrupted; reconnecting…");
    });
  }
  window.addEventListener("pagehide", function () {
    if (source) {
      source.close();
      source = null;
    }
    body.dataset.stream = "closed";
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && !source) {
      connect();
      schedule();
    }
  });
  connect();
})();
