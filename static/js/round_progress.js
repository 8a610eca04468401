// Live round progress: while the round is active, poll its JSON (/api/rounds/{id}/) and move the
// progress bars and timings; when it finishes, fetch the page once more and swap the status and the
// results in place (charts included) — no reload by hand, and polling stops.
(function () {
  var POLL_MS = 1000;
  var TERMINAL = ["done", "failed", "cancelled"];
  var box = document.getElementById("status");
  if (!box || box.dataset.active !== "1") return;
  var labelsNode = document.getElementById("status-labels");
  var labels = labelsNode ? JSON.parse(labelsNode.textContent) : {};

  function showStage(stage, p, seconds) {
    var total = p.total || 0, done = p.done || 0;
    var pct = total ? Math.round(100 * done / total) : 0;
    var bar = document.getElementById("p-" + stage);
    if (bar) { bar.max = total || 1; bar.value = done; bar.textContent = pct + "%"; }
    var text = document.getElementById("p-" + stage + "-text");
    if (text) text.textContent = done + "/" + total + " (" + pct + "%)";
    var time = document.getElementById("t-" + stage);
    if (time && seconds !== undefined && seconds !== null) time.textContent = Number(seconds).toFixed(1) + " s";
  }

  function showEstimate(estimate) {
    var now = document.getElementById("round-estimate");
    if (!now || !estimate || !estimate.html) return;
    var next = new DOMParser().parseFromString(estimate.html, "text/html").getElementById("round-estimate");
    if (next) now.replaceWith(document.importNode(next, true));
  }

  function show(round) {
    var label = document.getElementById("status-label");
    if (label) {
      label.textContent = labels[round.status] || round.status;
      label.className = "badge badge-" + round.status;
    }
    Object.keys(round.progress || {}).forEach(function (stage) {
      showStage(stage, round.progress[stage], (round.timings || {})[stage]);
    });
    showEstimate(round.estimate);
  }

  function swapIn() {
    return fetch(window.location.href, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["status", "round-body"].forEach(function (id) {
          var now = document.getElementById(id), next = fresh.getElementById(id);
          if (now && next) now.replaceWith(document.importNode(next, true));
        });
        if (window.renderCharts) window.renderCharts(document.getElementById("round-body"));
      });
  }

  function tick() {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (round) {
        if (!round) return setTimeout(tick, POLL_MS);
        show(round);
        if (TERMINAL.indexOf(round.status) >= 0) return swapIn();
        setTimeout(tick, POLL_MS);
      })
      .catch(function () { setTimeout(tick, POLL_MS); });  // a blip: try again
  }
  setTimeout(tick, POLL_MS);
})();
