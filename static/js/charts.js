// Draw every chart embedded by the {% chart %} tag: <div data-figure="ID"> + <script type="application/json" id="ID">.
// window.renderCharts(root) is also called after a part of a page is swapped in (round_progress.js).
(function () {
  function renderCharts(root) {
    (root || document).querySelectorAll("[data-figure]").forEach(function (el) {
      if (el.dataset.rendered === "1") return;
      if (!window.Plotly) {
        el.textContent = "The chart library did not load; the table has the same numbers.";
        return;
      }
      var source = document.getElementById(el.dataset.figure);
      if (!source) return;
      var fig = JSON.parse(source.textContent);
      // On a phone the mode bar would cover the legend: pinch-zoom works without it.
      var config = {responsive: true, displaylogo: false, displayModeBar: window.innerWidth > 640 ? "hover" : false};
      window.Plotly.newPlot(el, fig.data, fig.layout, config);
      el.dataset.rendered = "1";
    });
  }
  window.renderCharts = renderCharts;
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderCharts(document); });
  } else {
    renderCharts(document);
  }
})();
