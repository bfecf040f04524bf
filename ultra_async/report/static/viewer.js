// The results viewer: served by `ultra_async view` (data from /api/...) or embedded by
// `report --html` (window.UA_EMBED). No framework, no network beyond this page's own server.
"use strict";

const EMBED = window.UA_EMBED || null;
const state = { data: null, by: null, metric: null, cell: null, test: null, tests: [] };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (key === "style") node.setAttribute("style", value);
    else node.dataset[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A share as a percentage that never shows 100 % for less, nor 0 % for more.
function pct(value, digits = 1) {
  const step = Math.pow(10, -digits);
  let text = (value * 100).toFixed(digits);
  if (value < 1 && parseFloat(text) >= 100) text = (100 - step).toFixed(digits);
  else if (value > 0 && parseFloat(text) <= 0) text = step.toFixed(digits);
  return text + "%";
}

const isRate = (metric) => metric.endsWith("_rate") && !metric.startsWith("avg_");
const fmt = (metric, value) =>
  value === null || value === undefined ? "–" : isRate(metric) ? pct(value) : value.toFixed(3);

async function api(path, params) {
  if (EMBED) return embedded(path, params || {});
  const query = new URLSearchParams(params || {}).toString();
  const response = await fetch(path + (query ? "?" + query : ""), { cache: "no-store" });
  const body = await response.json();
  if (!response.ok && !body.error) body.error = response.statusText;
  return body;
}

function embedded(path, params) {
  if (path === "/api/data") return EMBED.data;
  if (path === "/api/tests") {
    const found = EMBED.tests.filter(
      (t) => t.model === params.model && t.labels[params.dimension] === params.value);
    found.sort((a, b) => (a.outcome === "completed") - (b.outcome === "completed") ||
      String(a.level).localeCompare(String(b.level)) || a.item_id.localeCompare(b.item_id));
    return { tests: found };
  }
  if (path === "/api/transcript") {
    const test = EMBED.tests.find((t) => t.item_id === params.item_id) || null;
    const transcript = EMBED.transcripts[params.item_id];
    return transcript ? { transcript, test }
      : { error: "no transcript embedded for " + params.item_id, test };
  }
  return {};
}

// Red → yellow → green over [lo, hi]; the same scale as the PNG heatmap.
function color(value, lo, hi) {
  if (value === null || value === undefined) return "#f2f4f7";
  const t = hi > lo ? Math.min(1, Math.max(0, (value - lo) / (hi - lo))) : 0.5;
  const stops = [[215, 48, 39], [254, 224, 139], [26, 152, 80]];
  const [a, b, u] = t < 0.5 ? [stops[0], stops[1], t * 2] : [stops[1], stops[2], (t - 0.5) * 2];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * u));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return Object.fromEntries(params.entries());
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.by) params.set("by", state.by);
  if (state.metric) params.set("metric", state.metric);
  if (state.cell) params.set("cell", state.cell.model + "|" + state.cell.value);
  if (state.test) params.set("test", state.test);
  history.replaceState(null, "", "#" + params.toString());
}

function drawControls() {
  const data = state.data;
  for (const [id, options, current] of [["by", data.dimensions, state.by],
                                        ["metric", data.metrics, state.metric]]) {
    const select = $(id);
    select.replaceChildren(...options.map((o) => el("option", {}, o)));
    select.value = current;
  }
}

function drawSummary() {
  const data = state.data;
  $("title").textContent = data.title + (data.suite ? ` · suite ${data.suite}` : "");
  const s = data.summary || {};
  const parts = [`${data.models.length} models`];
  if (s.total !== undefined) parts.push(`${s.total} tests`);
  if (s.success_rate !== undefined && s.total) parts.push(`${pct(s.success_rate)} success`);
  if (s.infra_errors !== undefined) parts.push(`${s.infra_errors} infra errors (not counted)`);
  if (data.last_updated) parts.push(`updated ${data.last_updated}`);
  $("summary").textContent = parts.join(" · ");
}

function drawHeatmap() {
  const data = state.data, by = state.by, metric = state.metric;
  const cells = data.tables[by] || [];
  const values = [...new Set(cells.map((c) => c.value))];
  const index = new Map(cells.map((c) => [c.model + "\u0000" + c.value, c]));
  const numbers = cells.filter((c) => c.n).map((c) => c.metrics[metric]).filter((v) => v !== null);
  const unit = isRate(metric) || numbers.every((v) => v >= 0 && v <= 1);
  const lo = unit ? 0 : Math.min(...numbers), hi = unit ? 1 : Math.max(...numbers);
  const head = el("tr", {}, el("th", { class: "model" }, "model \\ " + by.replace(/_/g, " ")),
    values.map((v) => el("th", { class: "num" }, v)));
  const rows = data.models.map((model) => el("tr", {}, el("th", { class: "model" }, model),
    values.map((value) => {
      const c = index.get(model + "\u0000" + value);
      if (!c || !c.n) {
        return el("td", { class: "cell empty", model, value },
          el("span", { class: "v" }, "–"), el("span", { class: "n" }, c ? `n=0, ${c.infra} infra` : ""));
      }
      const v = c.metrics[metric], ci = c.ci[metric];
      const selected = state.cell && state.cell.model === model && state.cell.value === value;
      return el("td", {
        class: "cell" + (c.few ? " few" : "") + (selected ? " selected" : ""), model, value,
        style: `background:${color(v, lo, hi)}`,
        on: { click: () => selectCell(model, value) },
      }, el("span", { class: "v" }, fmt(metric, v)),
        el("span", { class: "n" }, `n=${(c.counts || {})[metric] ?? c.n}`),
        ci ? el("span", { class: "ci" }, isRate(metric) ? `${pct(ci[0], 0)}–${pct(ci[1], 0)}`
          : `${ci[0].toFixed(3)}–${ci[1].toFixed(3)}`) : null);
    })));
  $("heatmap").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
}

async function selectCell(model, value) {
  state.cell = { model, value };
  state.test = null;
  writeHash();
  drawHeatmap();
  $("transcript").replaceChildren();
  const body = await api("/api/tests", { model, dimension: state.by, value });
  state.tests = body.tests || [];
  drawTests();
}

function drawTests() {
  const { model, value } = state.cell;
  const header = el("tr", {}, ["test", "shard", "outcome", "level", "score", "error", "time s"]
    .map((h) => el("th", {}, h)));
  const rows = state.tests.map((t) => el("tr", {
    class: "test" + (state.test === t.item_id ? " selected" : ""), item: t.item_id,
    on: { click: () => selectTest(t.item_id) },
  }, el("td", {}, t.item_id), el("td", {}, t.shard),
    el("td", { class: "outcome-" + t.outcome }, t.outcome),
    el("td", {}, t.level || ""), el("td", { class: "num" }, t.score === null ? "" : t.score.toFixed(3)),
    el("td", {}, t.error || t.reason || ""),
    el("td", { class: "num" }, t.time_s === null || t.time_s === undefined ? "" : t.time_s.toFixed(2))));
  $("tests").replaceChildren(
    el("h2", {}, `tests of ${model} × ${value} (${state.tests.length})`),
    state.tests.length ? el("table", { class: "tests" }, el("thead", {}, header), el("tbody", {}, rows))
      : el("p", { class: "muted" }, "no test of this cell in the journal"));
}

async function selectTest(itemId) {
  state.test = itemId;
  writeHash();
  if (state.cell) drawTests();
  const body = await api("/api/transcript", { item_id: itemId });
  drawTranscript(itemId, body);
  $("transcript").scrollIntoView({ block: "start" });
}

function message(role, content, extra) {
  return el("div", { class: "msg " + role },
    el("span", { class: "role" }, role + (extra ? " · " + extra : "")),
    typeof content === "string" ? content : JSON.stringify(content, null, 2));
}

function drawTranscript(itemId, body) {
  const parts = [el("h2", {}, "transcript of " + itemId)];
  const t = body.test;
  if (t) {
    parts.push(el("p", { class: "muted" }, [`model ${t.model}`, `shard ${t.shard}`, t.outcome,
      t.level, t.reason].filter(Boolean).join(" · ")));
  }
  if (body.error) {
    parts.push(el("p", { class: "error-banner" }, body.error));
  } else {
    const tr = body.transcript;
    tr.requests.forEach((r, i) => {
      const meta = [`${r.input_tokens ?? 0} in / ${r.output_tokens ?? 0} out tokens`,
        r.latency_s !== null && r.latency_s !== undefined ? `${r.latency_s.toFixed(2)} s` : null,
        r.finish_reason ? `finish ${r.finish_reason}` : null, r.cached ? "from cache" : null]
        .filter(Boolean).join(" · ");
      parts.push(el("div", { class: "request" }, el("h3", {}, `request ${i + 1}`),
        el("div", { class: "muted" }, meta),
        (r.messages || []).map((m) => message(m.role || "message", m.content ?? m, m.name)),
        (r.attempts || []).map((a) => el("div", { class: "attempt" },
          `failed attempt: ${a.error}${a.status ? " (HTTP " + a.status + ")" : ""}`)),
        r.reply !== null && r.reply !== undefined ? message("reply", r.reply)
          : el("div", { class: "attempt" }, "no reply")));
    });
    if (tr.truncated) parts.push(el("p", { class: "muted" }, "later requests left out (size cap)"));
  }
  $("transcript").replaceChildren(...parts);
}

function drawErrors() {
  const data = state.data;
  const errors = data.errors || {};
  const stats = data.model_stats || {};
  const rows = [];
  for (const model of data.models.concat(Object.keys(errors).filter((m) => !data.models.includes(m)))) {
    const s = stats[model] || {};
    const kinds = errors[model] || {};
    const causes = Object.entries(kinds).flatMap(([kind, found]) =>
      Object.entries(found).map(([cause, n]) => el("div", {}, el("span", { class: "kind" }, kind), ` ${cause}: ${n}`)));
    if (!causes.length && !s.infra_errors && !s.request_errors && !s.evaluate_errors) continue;
    rows.push(el("tr", {}, el("th", {}, model),
      ["infra_errors", "request_errors", "evaluate_errors"].map((k) =>
        el("td", { class: "num" }, s[k] === undefined ? "–" : s[k])),
      el("td", {}, causes)));
  }
  const head = el("tr", {}, ["model", "infra", "request", "evaluate", "causes (latest record of each test)"]
    .map((h) => el("th", {}, h)));
  $("errors").replaceChildren(el("h2", {}, "errors by cause"),
    rows.length ? el("table", {}, el("thead", {}, head), el("tbody", {}, rows))
      : el("p", { class: "muted" }, "no infra, request or evaluate errors"));
}

function drawProgress() {
  const p = state.data.progress;
  const box = $("progress");
  if (!p || !p.active) { box.className = ""; box.replaceChildren(); return; }
  box.className = "active";
  const rows = Object.entries(p.models).sort(([a], [b]) => a.toLowerCase().localeCompare(b.toLowerCase()))
    .map(([model, m]) => {
      const shards = Object.entries(m.shards);
      const detail = shards.length > 1 ? shards.map(([name, s]) => `${name} ${s.done + s.infra}`).join(" · ") : "";
      return el("tr", {}, el("th", {}, model), el("td", { class: "num" }, m.done),
        el("td", { class: "num" }, m.infra), el("td", { class: "num" }, m.recent),
        el("td", { class: "muted" }, detail));
    });
  box.replaceChildren(el("strong", {}, `a run is writing here (last result ${p.last_write_s}s ago)`),
    el("table", {}, el("thead", {}, el("tr", {}, ["model", "done", "infra", "last minute", "per shard"]
      .map((h) => el("th", {}, h)))), el("tbody", {}, rows)));
}

function drawAll() {
  drawSummary();
  drawControls();
  drawHeatmap();
  drawErrors();
  drawProgress();
}

async function load() {
  const data = await api("/api/data");
  if (data.error) { $("summary").textContent = data.error; return false; }
  state.data = data;
  if (!data.dimensions.includes(state.by)) state.by = data.dimensions[0] || null;
  if (!data.metrics.includes(state.metric)) {
    state.metric = data.metrics.includes("success_rate") ? "success_rate" : data.metrics[0] || null;
  }
  if (state.by && state.metric) drawAll();
  else { drawSummary(); drawErrors(); drawProgress(); }
  return true;
}

async function start() {
  const hash = readHash();
  state.by = hash.by || (EMBED && EMBED.by) || null;
  state.metric = hash.metric || (EMBED && EMBED.metric) || null;
  $("by").addEventListener("change", (e) => { state.by = e.target.value; state.cell = null;
    writeHash(); drawHeatmap(); $("tests").replaceChildren(); });
  $("metric").addEventListener("change", (e) => { state.metric = e.target.value; writeHash(); drawHeatmap(); });
  await load();
  if (hash.cell) {
    const cut = hash.cell.indexOf("|");
    await selectCell(hash.cell.slice(0, cut), hash.cell.slice(cut + 1));
  }
  if (hash.test) await selectTest(hash.test);
  document.body.dataset.ready = "1";
  if (!EMBED) {
    // while a run writes here, follow it; poll slowly once it is quiet
    const poll = async () => {
      const active = state.data && state.data.progress && state.data.progress.active;
      setTimeout(async () => { await load(); poll(); }, active ? 2000 : 10000);
    };
    poll();
  }
}

start();
