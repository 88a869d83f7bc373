// Draws every figure on the page: each <div class="chart" data-figure="ID"> takes the Plotly
// figure from <script type="application/json" id="ID">. Shared by the browser pages and the report.
(function () {
  function draw(root) {
    root.querySelectorAll("div.chart[data-figure]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var source = document.getElementById(el.dataset.figure);
      if (!source || !window.Plotly) return;
      var figure = JSON.parse(source.textContent);
      el.dataset.drawn = "1";
      window.Plotly.newPlot(el, figure.data, figure.layout, { displayModeBar: false, responsive: true });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
})();
