// The operator page: live streams, each with its recent scores against the threshold, its
// events and buttons to label them. Plain DOM and inline SVG: no framework, no build step,
// nothing fetched from outside the service (its Content-Security-Policy allows only 'self').
// Everything shown comes from the documented API (docs/api.md); text from the service is
// always set as text, never parsed as HTML.
"use strict";

const REFRESH_MS = 5000;
const STREAMS_PER_PAGE = 20;
const EVENTS_PER_STREAM = 5;
const KEY_STORAGE = "anomaly-api-key";
const LABELS = [
  ["false_alarm", "False alarm"],
  ["confirmed", "Confirmed"],
  ["expected", "Expected"],
];

// The API's routes, relative to the page (/ui -> /streams...), so a path prefix in front of
// the service keeps working. The streams are the chosen model's: `default`'s at /streams,
// another's at /models/{name}/streams.
const api = {
  models: () => "models",
  base: () => (page.model === DEFAULT_MODEL ? "" : "models/" + encodeURIComponent(page.model) + "/"),
  streams: (after) => api.base() +
    "streams?limit=" + STREAMS_PER_PAGE + (after ? "&after=" + encodeURIComponent(after) : ""),
  stream: (id) => api.base() + "streams/" + encodeURIComponent(id),
  scores: (id) => api.stream(id) + "/scores",
  events: (id) => api.stream(id) + "/events?limit=" + EVENTS_PER_STREAM,
  feedback: (id, eventId) => api.stream(id) + "/events/" + encodeURIComponent(eventId) + "/feedback",
};

const DEFAULT_MODEL = "default";
const page = { model: DEFAULT_MODEL, after: null, next: null, busy: false, paused: false };

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

function status(message, isError) {
  const line = document.getElementById("status");
  line.textContent = message;
  line.classList.toggle("error", Boolean(isError));
}

async function call(path, options) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers["X-API-Key"] = key;
  if (options && options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new ApiError(response.status, message);
  }
  return body;
}

function explain(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    const what = error.status === 401 ? "needs an API key" : "refused this API key";
    return `The service ${what} (${error.status}): enter a valid key above. (${error.message})`;
  }
  if (error instanceof ApiError) return `The service answered ${error.status}: ${error.message}`;
  return `The service did not answer: ${error.message}`;
}

function fmtTime(iso) {
  return iso ? iso.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, " UTC") : "open";
}

function fmtNumber(x) {
  return Number.isFinite(x) ? (Math.abs(x) >= 1000 || Math.abs(x) < 0.01 ? x.toExponential(2) : x.toFixed(2)) : String(x);
}

// The recent scores as a line, the threshold as a dashed line, flagged readings as dots.
function plot(scores) {
  const width = 900, height = 160, pad = 24;
  const chart = svg("svg", {
    class: "plot", viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": `${scores.length} recent scores`,
  });
  if (!scores.length) {
    const empty = svg("text", { x: pad, y: height / 2 });
    empty.textContent = "no scores recorded yet";
    chart.append(empty);
    return chart;
  }
  const values = scores.map((s) => s.anomaly_score);
  const thresholds = scores.map((s) => s.threshold);
  let low = Math.min(...values, ...thresholds), high = Math.max(...values, ...thresholds);
  if (high - low < 1e-9) { low -= 1; high += 1; }
  const x = (i) => pad + (scores.length === 1 ? 0 : (i * (width - 2 * pad)) / (scores.length - 1));
  const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / (high - low);
  chart.append(svg("polyline", {
    class: "threshold", points: thresholds.map((t, i) => `${x(i)},${y(t)}`).join(" "),
  }));
  chart.append(svg("polyline", {
    class: "score", points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "),
  }));
  scores.forEach((s, i) => {
    if (s.is_anomaly) chart.append(svg("circle", { class: "anomaly", cx: x(i), cy: y(s.anomaly_score), r: 2.5 }));
  });
  for (const [value, where] of [[high, pad - 6], [low, height - 6]]) {
    const tick = svg("text", { x: 4, y: where });
    tick.textContent = fmtNumber(value);
    chart.append(tick);
  }
  const span = svg("text", { x: width - 4, y: height - 6, "text-anchor": "end" });
  span.textContent = `${fmtTime(scores[0].timestamp)} → ${fmtTime(scores[scores.length - 1].timestamp)}`;
  chart.append(span);
  return chart;
}

function sensorTable(sensors) {
  const rows = sensors.map((s) => {
    const out = s.read < s.expected_low || s.read > s.expected_high;
    return el("tr", {},
      el("td", {}, s.feature),
      el("td", {}, `${(100 * s.share).toFixed(0)}%`),
      el("td", { class: out ? "out" : null, title: out ? "outside the expected range" : null }, fmtNumber(s.read)),
      el("td", {}, `${fmtNumber(s.expected_low)} … ${fmtNumber(s.expected_high)}`),
      el("td", {}, s.why || ""));
  });
  return el("table", { class: "sensors" },
    el("thead", {}, el("tr", {}, ["sensor", "share", "read", "expected range", "why"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function eventView(streamId, event) {
  const label = event.feedback
    ? el("span", { class: `label ${event.feedback.label}`, "data-label": event.feedback.label },
        `labelled ${event.feedback.label.replace("_", " ")} by ${event.feedback.by}`,
        event.feedback.note ? ` (“${event.feedback.note}”)` : "")
    : el("span", { class: "label", "data-label": "" }, "not labelled");
  const note = el("input", { type: "text", maxlength: 1000, placeholder: "note (optional)", "aria-label": "note" });
  note.addEventListener("focus", () => { page.paused = true; });
  note.addEventListener("blur", () => { page.paused = false; });
  const buttons = LABELS.map(([value, text]) => {
    const button = el("button", { type: "button", "data-label": value }, text);
    button.addEventListener("click", () => sendLabel(streamId, event.id, value, note.value, button));
    return button;
  });
  return el("div", { class: "event", "data-event": event.id },
    el("div", {},
      el("strong", {}, event.open ? "Open event " : "Event "), event.id, " · ",
      `${fmtTime(event.start)} → ${fmtTime(event.end)}`, " · ",
      `peak severity ${event.peak_severity.toFixed(2)}, ${event.anomalies}/${event.readings} anomalous · `,
      label),
    sensorTable(event.top_sensors),
    el("div", { class: "actions" }, buttons, note));
}

async function sendLabel(streamId, eventId, label, note, button) {
  button.disabled = true;
  try {
    await call(api.feedback(streamId, eventId), { method: "POST", body: JSON.stringify({ label, note }) });
    page.paused = false;
    await refresh();
    status(`Event ${eventId} of ${streamId} labelled ${label}.`, false);
  } catch (error) {
    status(explain(error), true);
  } finally {
    button.disabled = false;
  }
}

async function streamView(listed) {
  const id = listed.stream_id;
  const [state, scores, events] = await Promise.all([
    call(api.stream(id)), call(api.scores(id)), call(api.events(id)),
  ]);
  const lastScore = scores.scores.length ? scores.scores[scores.scores.length - 1] : null;
  return el("section", { class: "stream", "data-stream": id },
    el("h2", {}, id),
    el("div", { class: "meta" },
      `model ${state.model_version} · ${state.total} readings · last ${fmtTime(state.last_timestamp)} · `,
      `${state.alarm.alarms} alarms · ${state.backend}${state.degraded ? " (degraded)" : ""}`,
      lastScore ? ` · latest score ${fmtNumber(lastScore.anomaly_score)}` : ""),
    plot(scores.scores),
    events.events.length
      ? events.events.map((event) => eventView(id, event))
      : el("p", { class: "meta" }, "No events."));
}

// The model picker: every registered model (GET /models), the chosen one kept selected.
async function listModels() {
  const listed = await call(api.models());
  const names = listed.models.map((m) => m.name);
  if (!names.includes(page.model)) names.unshift(page.model);
  const picker = document.getElementById("model");
  const shown = [...picker.options].map((option) => option.value);
  if (shown.join("\n") !== names.join("\n")) { // rebuilt only on a change: an open list stays open
    picker.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  }
  picker.value = page.model;
}

async function refresh() {
  if (page.busy) return;
  page.busy = true;
  try {
    await listModels();
    const listed = await call(api.streams(page.after));
    const views = await Promise.all(listed.streams.map((s) => streamView(s).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null; // expired meanwhile
      throw error;
    })));
    const main = document.getElementById("streams");
    main.replaceChildren(...views.filter(Boolean));
    if (!listed.streams.length) main.append(el("p", {}, "No live streams."));
    page.next = listed.next_after;
    document.getElementById("more-streams").hidden = !page.next && !page.after;
    document.getElementById("next-streams").textContent = page.next ? "Next streams" : "First streams";
    const where = listed.backend + (listed.degraded ? ", Redis unreachable: this replica's memory" : "");
    status(`${listed.streams.length} live stream(s) of model ${page.model} (${where}), updated ${new Date().toLocaleTimeString()}.`, false);
  } catch (error) {
    status(explain(error), true);
  } finally {
    page.busy = false;
  }
}

function start() {
  const input = document.getElementById("api-key");
  input.value = sessionStorage.getItem(KEY_STORAGE) || "";
  document.getElementById("key-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    if (input.value) sessionStorage.setItem(KEY_STORAGE, input.value);
    else sessionStorage.removeItem(KEY_STORAGE);
    refresh();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    input.value = "";
    refresh();
  });
  document.getElementById("model").addEventListener("change", (changed) => {
    page.model = changed.target.value;
    page.after = null;
    refresh();
  });
  document.getElementById("next-streams").addEventListener("click", () => {
    page.after = page.next;
    refresh();
  });
  document.getElementById("refresh-s").textContent = String(REFRESH_MS / 1000);
  refresh();
  setInterval(() => { if (!page.paused && !document.hidden) refresh(); }, REFRESH_MS);
}

start();
