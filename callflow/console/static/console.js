// The console's live side: one EventSource for the whole session (SSE with Last-Event-ID replay),
// sections swapped in place, a visible "disconnected" state, audio timelines with uPlot and
// keyboard shortcuts (Alt + the phone code's digit). No inline script: the CSP forbids it.
(function () {
  "use strict";
  const CLASSES = ["dead_line", "silence", "noise", "breathing", "speech", "taps"];
  const charts = {};
  let timelines = {};
  let source = null;

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function setLink(state) {
    const banner = document.getElementById("disconnected");
    const label = document.getElementById("link-state");
    document.body.classList.toggle("offline", state !== "live");
    if (banner) banner.hidden = state === "live";
    if (label) {
      label.textContent = state === "live" ? "en direct" : "déconnecté";
      label.className = "link-state " + state;
    }
  }

  function swap(section, html) {
    const el = document.querySelector('[data-section="' + section + '"]');
    if (!el) return;
    const active = document.activeElement;
    const key = active && el.contains(active) ? focusKey(active) : null;
    const typed = keepTyped(el);
    el.innerHTML = html;
    restoreTyped(el, typed);
    if (key) {
      const again = el.querySelector(key);
      if (again) again.focus();
    }
    drawTimelines();
  }

  // what the person is typing in a form of a live section (the briefing card) survives its refresh,
  // as long as the form is the same one (same action: same call)
  function keepTyped(el) {
    const kept = {};
    el.querySelectorAll("form").forEach(function (form) {
      const values = {};
      form.querySelectorAll("input, textarea, select").forEach(function (f) {
        if (!f.name || f.type === "hidden") return;
        values[f.name] = f.type === "checkbox" ? f.checked : f.value;
      });
      kept[form.getAttribute("action")] = values;
    });
    return kept;
  }

  function restoreTyped(el, kept) {
    el.querySelectorAll("form").forEach(function (form) {
      const values = kept[form.getAttribute("action")];
      if (!values) return;
      form.querySelectorAll("input, textarea, select").forEach(function (f) {
        if (!(f.name in values) || f.type === "hidden") return;
        if (f.type === "checkbox") f.checked = values[f.name]; else f.value = values[f.name];
      });
    });
  }

  function focusKey(el) {
    if (el.id) return "#" + CSS.escape(el.id);
    const form = el.closest("form");
    if (form && form.getAttribute("action")) {
      return 'form[action="' + form.getAttribute("action") + '"] ' + el.tagName.toLowerCase() +
        (el.name ? '[name="' + el.name + '"]' : "");
    }
    return null;
  }

  function connect() {
    if (!document.body.dataset.live || source) return;
    // the browser resends the last id it saw (Last-Event-ID) on its own reconnections; the first
    // connection starts from the id the page was rendered at, so nothing between the two is lost
    const start = document.body.dataset.lastEventId || "";
    source = new EventSource("/console/events?last_event_id=" + encodeURIComponent(start));
    source.addEventListener("open", function () { setLink("live"); });
    source.addEventListener("error", function () {
      setLink("offline");
      if (source.readyState === EventSource.CLOSED) { source = null; setTimeout(connect, 2000); }
    });
    source.addEventListener("reset", function () { document.body.dataset.reset = String(Date.now()); });
    source.addEventListener("section", function (ev) {
      document.body.dataset.lastEventId = ev.lastEventId;
      const msg = JSON.parse(ev.data);
      if (msg.json !== undefined) {
        applyTimelines(msg.json);
        drawTimelines();
      } else if (msg.rows !== undefined) {
        applyRows(msg);
      } else {
        swap(msg.section, msg.html);
      }
      document.body.dataset.events = String(Number(document.body.dataset.events || 0) + 1);
    });
  }

  // timelines only grow: the stream sends the new readings ({append, gone}), or all of them on a reset ({full})
  const KEEP = 480;
  function applyTimelines(msg) {
    if (msg.full !== undefined) { timelines = msg.full; return; }
    Object.keys(msg.append || {}).forEach(function (id) {
      const line = timelines[id] || (timelines[id] = []);
      Array.prototype.push.apply(line, msg.append[id]);
      if (line.length > KEEP) line.splice(0, line.length - KEEP);
    });
    (msg.gone || []).forEach(function (id) { delete timelines[id]; });
  }

  // the calls table, row by row: the rows that changed, the calls gone, the order
  function applyRows(msg) {
    const el = document.querySelector('[data-section="' + msg.section + '"]');
    const tbody = el && el.querySelector("tbody[data-rows]");
    if (!tbody) return;
    const active = document.activeElement;
    const key = active && el.contains(active) ? focusKey(active) : null;
    const figs = el.querySelector(".timelines");
    const sel = function (attr, id) { return "[" + attr + '="' + CSS.escape(id) + '"]'; };
    (msg.gone || []).forEach(function (id) {
      const row = tbody.querySelector("tr" + sel("data-call", id));
      if (row) row.remove();
      const fig = figs && figs.querySelector(sel("data-timeline", id));
      if (fig) fig.remove();
    });
    Object.keys(msg.rows || {}).forEach(function (id) {
      const holder = document.createElement("tbody");
      holder.innerHTML = msg.rows[id];
      const row = holder.querySelector("tr");
      const old = tbody.querySelector("tr" + sel("data-call", id));
      if (old) old.replaceWith(row); else tbody.appendChild(row);
    });
    const rows = Array.from(tbody.querySelectorAll("tr[data-call]")).map(function (r) { return r.dataset.call; });
    if (rows.join("\n") !== (msg.order || []).join("\n")) {
      (msg.order || []).forEach(function (id) {
        const row = tbody.querySelector("tr" + sel("data-call", id));
        if (row) tbody.appendChild(row);
      });
    }
    if (figs) {
      (msg.order || []).forEach(function (id) {
        if (figs.querySelector(sel("data-timeline", id))) return;
        const fig = document.createElement("figure");
        fig.className = "timeline";
        fig.dataset.timeline = id;
        const cap = document.createElement("figcaption");
        cap.textContent = id + " · timeline audio";
        fig.appendChild(cap);
        figs.appendChild(fig);
      });
    }
    const n = (msg.order || []).length;
    const count = el.querySelector("[data-count]");
    if (count) count.textContent = String(n);
    const empty = el.querySelector("[data-empty]");
    if (empty) empty.hidden = n > 0;
    const table = tbody.closest("table");
    if (table) table.hidden = n === 0;
    if (key) {
      const again = el.querySelector(key);
      if (again && again !== document.activeElement) again.focus();
    }
    ticking();
    drawTimelines();
  }

  // durations count on the page (the server sends when a call started, not every second)
  const skew = Number(document.body.dataset.now || 0) ? Number(document.body.dataset.now) - Date.now() / 1000 : 0;
  function ticking() {
    const now = Date.now() / 1000 + skew;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      const since = Number(el.dataset.since);
      if (!since) return;
      const s = Math.max(0, Math.floor(now - since));
      el.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    });
  }
  setInterval(ticking, 1000);

  function drawTimelines() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("[data-timeline]").forEach(function (fig) {
      const id = fig.dataset.timeline;
      // the live stream's copy, or the one the server rendered into the card (whichever is longer)
      let line = timelines[id] || [];
      if (fig.dataset.series) {
        try { const own = JSON.parse(fig.dataset.series); if (own.length > line.length) line = own; } catch (e) { /* keep */ }
      }
      const xs = line.map(function (r) { return r[0]; });
      const levels = line.map(function (r) { return r[2]; });
      const kinds = line.map(function (r) { return CLASSES.indexOf(r[1]); });
      const data = [xs, levels, kinds];
      fig.dataset.points = String(line.length);
      const level = document.querySelector('[data-level="' + CSS.escape(id) + '"]');
      if (level) level.textContent = line.length ? line[line.length - 1][2] + " dBFS" : "";
      fig.dataset.last = line.length ? line[line.length - 1][1] + "@" + line[line.length - 1][0] : "";
      let chart = charts[id];
      if (chart && !document.body.contains(chart.root)) { chart.destroy(); chart = null; }
      if (chart && !fig.contains(chart.root)) { chart.destroy(); chart = null; }
      if (!chart) {
        chart = new uPlot({
          width: Math.max(560, Math.min(fig.clientWidth || 640, 900)), height: 180,
          scales: { x: { time: false }, db: { range: [-90, 0] }, cls: { range: [-0.5, 5.5] } },
          axes: [{ label: "s" }, { scale: "db", label: "dBFS" },
            { scale: "cls", side: 1, size: 90, splits: function () { return [0, 1, 2, 3, 4, 5]; },
              values: function (u, vals) { return vals.map(function (v) { return CLASSES[v] || ""; }); } }],
          series: [{}, { label: "niveau", scale: "db", stroke: "#3366cc" },
            { label: "classe", scale: "cls", stroke: "#cc6633", paths: uPlot.paths.stepped({ align: 1 }) }],
        }, data, fig);
        charts[id] = chart;
      } else {
        chart.setData(data);
      }
    });
  }

  function periodPlot() {
    const el = document.getElementById("series-data");
    const fig = document.getElementById("period-plot");
    if (!el || !fig || typeof uPlot === "undefined" || fig.dataset.drawn) return;
    const s = JSON.parse(el.textContent);
    fig.dataset.drawn = "1";
    new uPlot({
      width: Math.max(320, Math.min(fig.clientWidth || 800, 1000)), height: 240,
      series: [{}, { label: "appels", stroke: "#333" }, { label: "muets", stroke: "#996600" },
        { label: "répondus", stroke: "#2a7" }, { label: "abandonnés", stroke: "#c33" }],
    }, [s.t, s.calls, s.silent, s.answered, s.abandoned], fig);
  }

  function pageLoaded() {
    const el = document.getElementById("timelines-data");
    if (el) { try { Object.assign(timelines, JSON.parse(el.textContent)); } catch (e) { /* stale page */ } }
    drawTimelines();
    periodPlot();
    connect();
  }

  // every form carries the session's CSRF token (sections re-rendered by the server have it too)
  document.addEventListener("submit", function (ev) {
    const input = ev.target.querySelector('input[name="_csrf"]');
    if (input && !input.value) input.value = csrf();
  }, true);

  // Alt + key: the button that carries data-key (same digits as the phone's * codes)
  document.addEventListener("keydown", function (ev) {
    if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const key = ev.key.toLowerCase();
    const target = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (target) { ev.preventDefault(); target.focus(); target.click(); }
  });

  document.addEventListener("htmx:configRequest", function (ev) { ev.detail.headers["X-CSRF-Token"] = csrf(); });
  document.addEventListener("htmx:responseError", function (ev) {
    const flash = document.getElementById("flash");
    if (flash) { flash.textContent = ev.detail.xhr.responseText || "erreur"; flash.hidden = false; }
  });
  document.addEventListener("htmx:afterSettle", pageLoaded);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", pageLoaded);
  else pageLoaded();
})();
