// The supervisor's figures: lists and charts drawn from /supervise/figures.json, refreshed every
// 15 seconds without reloading the page. Text goes in with textContent, never as HTML.
(function () {
  "use strict";
  var words = JSON.parse(document.getElementById("words").textContent);
  var measures = JSON.parse(document.getElementById("measures").textContent);
  var lang = document.documentElement.lang.indexOf("zh") === 0 ? "zh" : "en";
  var w = function (key) { return Object.prototype.hasOwnProperty.call(words, key) ? words[key] : key; };
  var pct = function (v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; };
  var el = function (tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
  var name = function (figures, code) { var n = figures.names[code]; return n ? (n["name_" + lang] || n.name_zh) : code; };
  var topic = function (figures, kind, code) {
    var n = ((figures.topic_names || {})[kind] || {})[code];
    return n ? (n["name_" + lang] || n.name_zh) : code;
  };
  var zone = "Asia/Shanghai";
  var localTime = function (iso) {
    var d = new Date(iso);
    var parts = new Intl.DateTimeFormat("en-GB", {timeZone: zone, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).formatToParts(d);
    var get = function (t) { return (parts.find(function (p) { return p.type === t; }) || {}).value; };
    var monthNumber = new Intl.DateTimeFormat("en", {timeZone: zone, month: "numeric"}).format(d);
    return lang === "zh" ? monthNumber + "月" + get("day") + "日 " + get("hour") + ":" + get("minute")
                         : get("day") + " " + get("month") + " " + get("hour") + ":" + get("minute");
  };

  function fill(id, rows, line) {
    var list = document.getElementById(id);
    list.replaceChildren();
    if (!rows.length) { list.appendChild(el("li", w("dash.none"), "muted")); return; }
    rows.forEach(function (row) { list.appendChild(line(row)); });
  }

  function appealLine(figures) {
    return function (row) {
      var li = el("li");
      var a = el("a", row.code || row.appeal);
      a.href = "/work/appeals/" + encodeURIComponent(row.code || row.appeal);
      li.appendChild(a);
      li.appendChild(el("span", " " + (row.title || "")));
      if (row.reopened) { li.appendChild(document.createTextNode(" ")); li.appendChild(el("span", w("appeal.reopened"), "tag reopened")); }
      if (row.department) li.appendChild(el("span", " · " + name(figures, row.department), "muted"));
      if (row.hours_late) li.appendChild(el("span", " · " + row.hours_late + " h", "late"));
      return li;
    };
  }

  function rates(figures) {
    var body = document.querySelector("#rates tbody");
    var columns = Array.prototype.map.call(document.querySelectorAll("#rates thead th"), function (th) { return th; }).slice(1);
    var keys = ["dispatched", "anonymous", "with_photos", "response_rate", "resolution_rate", "satisfaction_rate", "on_time_rate", "return_rate", "reopen_rate", "backlog", "overdue"];
    body.replaceChildren();
    figures.rates.forEach(function (row) {
      var tr = el("tr");
      tr.dataset.department = row.department;
      var th = el("th", name(figures, row.department)); th.scope = "row"; tr.appendChild(th);
      keys.forEach(function (key) {
        // Every number opens the appeals it counts, with the page's period and filters.
        var td = el("td");
        var a = el("a", /_rate$/.test(key) ? pct(row[key]) : String(row[key]));
        var query = new URLSearchParams(window.location.search);
        query.set("measure", measures[key]);
        query.set("department", row.department);
        a.href = "/supervise/appeals?" + query.toString();
        td.appendChild(a);
        td.dataset.col = key; tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    return columns;
  }

  var layout = function (extra) {
    return Object.assign({margin: {l: 40, r: 10, t: 10, b: 40}, height: 260, legend: {orientation: "h"},
                          paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"}, extra || {});
  };
  var config = {displayModeBar: false, responsive: true};

  // A chart with nothing to draw says so, instead of an empty frame.
  function drawOrSay(id, empty, draw) {
    var box = document.getElementById(id);
    var note = box.querySelector(".chart-empty");
    if (empty) {
      window.Plotly.purge(box);
      if (!note) box.replaceChildren(el("p", w("dash.chart.empty"), "muted chart-empty"));
      return;
    }
    if (note) note.remove();
    draw();
  }

  function charts(figures) {
    if (!window.Plotly) return;
    var weeks = figures.trend.weeks;
    var series = ["response_rate", "resolution_rate", "satisfaction_rate", "on_time_rate"].map(function (key) {
      return {x: weeks, y: figures.trend.rates.map(function (r) { return r[key]; }), name: w("col." + key),
              type: "scatter", mode: "lines+markers", connectgaps: true};
    });
    var noRates = series.every(function (s) { return s.y.every(function (v) { return v === null || v === undefined; }); });
    drawOrSay("chart-rates", noRates, function () {
      window.Plotly.react("chart-rates", series, layout({xaxis: {type: "category"},
                                                           yaxis: {tickformat: ".0%", range: [0, 1.05]}}), config);
    });
    drawOrSay("chart-backlog", figures.backlog.open.every(function (n) { return !n; }), function () {
      window.Plotly.react("chart-backlog", [{x: figures.backlog.days, y: figures.backlog.open, type: "bar",
                                             name: w("col.backlog"), marker: {color: "#3b6ea5"}}],
                          layout({xaxis: {type: "category"}, yaxis: {rangemode: "tozero"}}), config);
    });
    var breaches = figures.breaches.slice().sort(function (a, b) { return b.count - a.count; });
    drawOrSay("chart-breaches", !breaches.length, function () {
      window.Plotly.react("chart-breaches", [{y: breaches.map(function (b) { return name(figures, b.department); }),
                                              x: breaches.map(function (b) { return b.count; }), type: "bar",
                                              orientation: "h", marker: {color: "#b3261e"}, name: w("col.count")}],
                          layout({margin: {l: 160, r: 10, t: 10, b: 30}, xaxis: {rangemode: "tozero"},
                                  yaxis: {type: "category"}}), config);
    });
  }

  function draw(figures) {
    zone = figures.zone || zone;  // the city's zone, from the server's settings
    rates(figures);
    document.getElementById("overdue-count").textContent = figures.overdue.length;
    document.getElementById("at-risk-count").textContent = figures.at_risk.length;
    document.getElementById("undelivered-count").textContent = figures.undelivered.length;
    fill("overdue-list", figures.overdue.slice(0, 50), appealLine(figures));
    fill("at-risk-list", figures.at_risk.slice(0, 50), appealLine(figures));
    fill("extensions-list", figures.pending.extensions, function (e) {
      var li = appealLine(figures)({code: e.appeal, title: e.extra + " · " + (e.reason || "")}); return li; });
    fill("disputed-list", figures.pending.disputed_returns, function (d) {
      return appealLine(figures)({code: d.appeal, title: d.title + " · " + d.returns}); });
    fill("hot-list", figures.hot_topics, function (h) {
      var place = [topic(figures, "category", h.category), topic(figures, "district", h.district),
                   topic(figures, "street", h.street)].filter(Boolean).join(" / ");
      return el("li", place + " · " + w("dash.hot_count").replace("{n}", h.appeals)); });
    fill("undelivered-list", figures.undelivered.slice(0, 50), function (m) {
      var li = appealLine(figures)({code: m.appeal, title: [m.event, m.recipient, m.channel, m.status, m.last_error]
        .filter(Boolean).join(" · ")});
      var form = el("form"); form.method = "post"; form.className = "inline";
      form.action = "/supervise/undelivered/" + encodeURIComponent(m.id) + "/retry";
      var csrf = el("input"); csrf.type = "hidden"; csrf.name = "csrf"; csrf.value = document.getElementById("csrf").value;
      var button = el("button", w("dash.retry")); button.type = "submit";
      form.appendChild(csrf); form.appendChild(button); li.appendChild(document.createTextNode(" ")); li.appendChild(form);
      return li; });
    document.getElementById("updated").textContent = w("dash.updated").replace("{at}", localTime(figures.at));
    document.body.dataset.figuresAt = figures.at;
    charts(figures);
  }

  function refresh() {
    return fetch("/supervise/figures.json" + window.location.search,  // the same filters
                 {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (figures) { if (figures) draw(figures); })
      .catch(function () { /* the next tick tries again */ });
  }

  window.refreshFigures = refresh;
  draw(JSON.parse(document.getElementById("figures").textContent));
  window.setInterval(refresh, 15000);
})();
