// Draws every figure on the page: each <div class="chart" data-figure="ID"> takes the Plotly
// figure from <script type="application/json" id="ID">. Shared by the browser pages and the report.
(function () {
  // Below this width (a phone) a horizontal bar chart's long feature names would take the whole
  // width and be cut: they are wrapped onto lines of at most WRAP characters instead.
  var NARROW = 600, WRAP = 24;

  function wrap(text, width) {
    if (typeof text !== "string" || text.length <= width) return text;
    var lines = [], line = "";
    text.split(" ").forEach(function (word) {
      if (line && (line + " " + word).length > width) { lines.push(line); line = word; }
      else line = line ? line + " " + word : word;
    });
    if (line) lines.push(line);
    return lines.join("<br>");
  }

  function lineCount(text) {
    return typeof text === "string" ? text.split("<br>").length : 1;
  }

  // An x-axis title is centred under the plot area, which long category names can leave at
  // about half the chart: a title longer than that half holds (at about 8.5 px a character of
  // the title's font: 7 px let a waterfall's title of two segment names run past the chart's
  // right edge at 1280 px) is wrapped, or it runs past the chart's edge and is cut. A title of
  // two sides ("← towards 'A' · towards 'B' →") breaks between them first, so each side reads
  // on a line of its own.
  function fitTitle(figure, width) {
    var layout = figure.layout || {}, axis = layout.xaxis;
    if (!axis || !axis.title || typeof axis.title.text !== "string") return figure;
    var budget = Math.max(WRAP, Math.floor(width * 0.45 / 8.5));
    if (axis.title.text.length <= budget) return figure;
    axis.title.text = axis.title.text.split(" · towards ").map(function (side, i) {
      return wrap((i ? "towards " : "") + side, budget);
    }).join(" ·<br>");
    var extra = 14 * (lineCount(axis.title.text) - 1);
    layout.margin = Object.assign({}, layout.margin, { b: ((layout.margin || {}).b || 40) + extra });
    if (layout.height) layout.height += extra;
    figure.layout = layout;
    return figure;
  }

  function fitNarrow(figure, width) {
    if (width >= NARROW) return fitTitle(figure, width);
    var layout = figure.layout || {}, extra = 0;
    figure.data.forEach(function (trace) {
      if (trace.orientation !== "h" || !Array.isArray(trace.y)) return;
      var before = trace.y.reduce(function (n, t) { return n + lineCount(t); }, 0);
      trace.y = trace.y.map(function (t) { return wrap(t, WRAP); });
      var after = trace.y.reduce(function (n, t) { return n + lineCount(t); }, 0);
      extra = Math.max(extra, after - before);
    });
    // notes placed at a category (a churn chart's "not measured" beside its segment) follow
    // the renamed category, or they would sit between two rows
    (layout.annotations || []).forEach(function (note) {
      if (note.yref !== "y" && note.yref !== undefined) return;
      note.y = wrap(note.y, WRAP);
      note.text = wrap(note.text, WRAP - 2);  // it starts at the plot's left edge
    });
    // A legend entry does not wrap by itself: a long segment name ran past the chart's right
    // edge and was cut. Names are wrapped to what is left beside the legend's title and symbol.
    if (layout.showlegend !== false) {
      var room = Math.max(WRAP, Math.floor((width - 120) / 7));
      figure.data.forEach(function (trace) {
        if (trace.showlegend !== false && typeof trace.name === "string") trace.name = wrap(trace.name, room);
      });
    }
    layout.font = Object.assign({}, layout.font, { size: 11 });
    // room for the last tick's label ("highest") past the plot's right edge
    layout.margin = Object.assign({}, layout.margin, { r: 28 });
    if (layout.height) layout.height += 14 * extra;
    // Rows are spaced evenly, so the height added for all the lines is not enough where two
    // long names of three or four lines are neighbours: they ran into each other. Every row
    // gets the room of the tallest name.
    var rows = 0, tallest = 1;
    figure.data.forEach(function (trace) {
      if (trace.orientation !== "h" || !Array.isArray(trace.y)) return;
      rows = Math.max(rows, trace.y.length);
      trace.y.forEach(function (t) { tallest = Math.max(tallest, lineCount(t)); });
    });
    if (layout.height && rows) {
      var margin = layout.margin || {};
      var needed = rows * (14 * tallest + 6) + (margin.t || 40) + (margin.b || 40);
      layout.height = Math.max(layout.height, needed);
    }
    var axis = layout.xaxis;
    if (axis && axis.title && axis.title.text) {
      // centred under the plot area, which the wrapped names leave at about half the width
      axis.title.text = wrap(axis.title.text, WRAP);
      layout.margin = Object.assign({}, layout.margin, { b: 40 + 14 * (lineCount(axis.title.text) - 1) });
    }
    if (axis && Array.isArray(axis.ticktext) && axis.ticktext.length > 3) {
      // "lowest … average … highest": the ends and the middle fit a phone's width unrotated
      var keep = [0, Math.floor(axis.ticktext.length / 2), axis.ticktext.length - 1];
      axis.tickvals = keep.map(function (i) { return axis.tickvals[i]; });
      axis.ticktext = keep.map(function (i) { return axis.ticktext[i]; });
    }
    figure.layout = layout;
    return figure;
  }

  function draw(root) {
    root.querySelectorAll("div.chart[data-figure]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var source = document.getElementById(el.dataset.figure);
      if (!source || !window.Plotly) return;
      var figure = fitNarrow(JSON.parse(source.textContent), el.clientWidth || window.innerWidth);
      el.dataset.drawn = "1";
      window.Plotly.newPlot(el, figure.data, figure.layout, { displayModeBar: false, responsive: true });
      if (el.dataset.opens && el.on) {
        // a dot of the map opens its customer (a product manager clicked and nothing happened).
        // With no pointer that hovers (a phone), a first tap shows the dot's label and a second
        // tap on the same dot opens it: a tap opened the customer at once, its label never seen
        // (a product manager's review, 2026-12-08).
        var touch = window.matchMedia && window.matchMedia("(hover: none)").matches;
        var shown = null;
        el.on("plotly_click", function (event) {
          var point = event && event.points && event.points[0];
          if (!point || point.customdata == null) return;
          var id = String(point.customdata);
          if (touch && shown !== id) {
            shown = id;
            window.Plotly.Fx.hover(el, [{ curveNumber: point.curveNumber, pointNumber: point.pointNumber }]);
            return;
          }
          window.location.href = el.dataset.opens + encodeURIComponent(id);
        });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
})();
