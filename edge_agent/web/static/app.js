// The technician's page: plain JavaScript, no libraries, nothing from the internet.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const REFRESH_MS = 1000; // the live picture: about one frame a second
const POLL_MS = 2000; // health and events
const ZONE_KINDS = ["intrusion", "loitering", "crowd", "stopped_vehicle", "congestion"];
const $ = (id) => document.getElementById(id);

let cameras = []; // from /api/cameras
const editor = { camera: null, zones: [], lines: [], masks: [], draft: [] };

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401) {
    window.location.href = "/login";
    throw new Error("logged out");
  }
  return response.json();
}

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  if (response.status === 401) window.location.href = "/login";
  return { status: response.status, body: await response.json() };
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- views ------------------------------------------------------------------------------

function currentView() {
  const name = window.location.hash.slice(1);
  return ["live", "health", "events", "zones", "selftest"].includes(name) ? name : "live";
}

function showView() {
  const name = currentView();
  for (const view of document.querySelectorAll(".view")) {
    view.classList.toggle("shown", view.id === name);
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.id === "nav-" + name);
  }
  if (name === "health") refreshHealth();
  if (name === "events") refreshEvents();
  if (name === "selftest") refreshSelftest();
}

const visible = (name) => currentView() === name && !document.hidden;

// -- live -------------------------------------------------------------------------------

function frameUrl(id, draw) {
  return `/api/cameras/${encodeURIComponent(id)}/latest.jpg?draw=${draw}&width=640&t=${Date.now()}`;
}

// Reload an <img> about once a second while its view is shown; never two loads at once.
function keepFresh(img, view, url) {
  const next = () => window.setTimeout(load, REFRESH_MS);
  const load = () => {
    if (!visible(view)) {
      next();
      return;
    }
    img.onload = next;
    img.onerror = next;
    img.src = url();
  };
  load();
}

function buildLive() {
  const box = $("cameras");
  box.replaceChildren();
  for (const camera of cameras) {
    const figure = element("figure");
    const img = element("img", { id: "live-" + camera.id, alt: "camera " + camera.id });
    figure.append(img, element("figcaption", {}, `${camera.id} (${camera.fps} fps)`));
    box.append(figure);
    keepFresh(img, "live", () => frameUrl(camera.id, 1));
  }
}

// -- health -----------------------------------------------------------------------------

function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "unknown";
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

// What each condition means for the technician at the pole, and what to do (docs/install.md).
const CONDITION_MEANS = {
  ok: "every camera sends frames and the broker is connected",
  starting: "loading the model, waiting for the first frames",
  uplink_down: "no broker: events are kept on disk and sent when it is back; check the uplink",
  camera_fault: "a camera sends nothing: check its power, cable or network, URL and password",
  stopped: "the agent is stopping",
};

async function refreshHealth() {
  const health = await getJSON("/api/health");
  const condition = $("condition");
  const means = CONDITION_MEANS[health.condition];
  condition.textContent =
    `Condition: ${health.condition} (status LED: ${health.status_led})` + (means ? ` — ${means}` : "");
  condition.className =
    "condition " + (health.condition === "ok" ? "ok" : health.condition === "starting" ? "starting" : "bad");
  const facts = [
    ["Broker link", health.broker_connected ? "connected" : "DOWN"],
    ["Outbox depth", `${health.outbox_depth} message(s)` + (health.outbox_writable ? "" : " (NOT WRITABLE)")],
    ["Disk free", fmtBytes(health.outbox.disk_free_bytes)],
    ["Silent cameras", health.silent_cameras.length ? health.silent_cameras.join(", ") : "none"],
    ["Uptime", `${Math.round(health.uptime_s)} s`],
    ["Version", `${health.version} (boot ${health.boot})`],
  ];
  const list = $("health-list");
  list.replaceChildren();
  for (const [name, value] of facts) list.append(element("dt", {}, name), element("dd", {}, value));
  const rows = $("camera-health").querySelector("tbody");
  rows.replaceChildren();
  for (const [id, stats] of Object.entries(health.cameras)) {
    const row = element("tr");
    const ms = stats.inference_ms === null ? "-" : stats.inference_ms.toFixed(1);
    const motion = stats.motion_ratio === null ? "-" : (100 * stats.motion_ratio).toFixed(1) + " %";
    for (const cell of [id, stats.fps.toFixed(1), ms, motion, String(stats.failed_frames)]) {
      row.append(element("td", {}, cell));
    }
    rows.append(row);
  }
}

// -- events -----------------------------------------------------------------------------

async function refreshEvents() {
  const items = await getJSON("/api/events");
  const list = $("event-list");
  list.replaceChildren();
  if (!items.length) list.append(element("li", {}, "Nothing yet."));
  for (const item of items) {
    const li = element("li", { class: item.what });
    if (item.thumbnail) {
      li.append(element("img", { src: `/api/events/${encodeURIComponent(item.id)}/thumbnail.jpg`, alt: "" }));
    }
    const when = new Date(item.time * 1000).toLocaleTimeString();
    const where = item.zone ? ` in ${item.zone}` : "";
    const text = `${when} ${item.camera}: ${item.what} ${item.kind} ${item.step}, ${item.label}${where}`;
    li.append(element("span", {}, text));
    list.append(li);
  }
}

// -- self-test --------------------------------------------------------------------------

let selftestRunning = false;

function showSelftest(state) {
  selftestRunning = state.running;
  $("selftest-run").disabled = state.running;
  const line = $("selftest-status");
  if (state.running) line.textContent = "Running...";
  else if (state.error) line.textContent = state.error;
  else if (state.finished) {
    const verdict = state.exit_code === 0 ? "passed" : "FAILED";
    line.textContent = `${verdict} at ${new Date(state.finished * 1000).toLocaleTimeString()}`;
  } else line.textContent = "Not run since the agent started.";
  const list = $("selftest-list");
  list.replaceChildren();
  for (const check of state.results) {
    const li = element("li", { class: "check " + check.status.toLowerCase() });
    li.append(element("b", {}, check.status), element("span", {}, ` ${check.name}: ${check.detail}`));
    if (check.fix) li.append(element("div", { class: "fix" }, "→ " + check.fix));
    list.append(li);
  }
}

async function refreshSelftest() {
  showSelftest(await getJSON("/api/selftest"));
}

async function runSelftest() {
  const result = await postJSON("/api/selftest", {});
  showSelftest(result.body);
}

// -- zone editor ------------------------------------------------------------------------

function editedZones(camera) {
  return camera.zones.map((zone) => ({
    name: zone.name,
    polygon: zone.polygon,
    schedule: zone.schedule,
    rules: camera.rules.filter((r) => r.zone === zone.name && ZONE_KINDS.includes(r.kind)).map((r) => r.kind),
  }));
}

function editedLines(camera) {
  return camera.rules.filter((r) => r.kind === "line_crossing").map((r) => ({ name: r.name, a: r.a, b: r.b }));
}

const drawingLine = () => $("draw-kind").value === "line";
const drawingMask = () => $("draw-kind").value === "mask";

function chooseCamera(id) {
  const camera = cameras.find((c) => c.id === id) || cameras[0];
  editor.camera = camera.id;
  editor.zones = editedZones(camera);
  editor.lines = editedLines(camera);
  editor.masks = (camera.masks || []).map((mask) => mask.map(([x, y]) => [x, y]));
  editor.draft = [];
  drawEditor();
}

const SVG = "http://www.w3.org/2000/svg";
const scaled = (points) => points.map(([x, y]) => `${x * 1000},${y * 1000}`).join(" ");

function drawEditor() {
  const svg = $("edit-svg");
  svg.replaceChildren();
  for (const mask of editor.masks) {
    const polygon = document.createElementNS(SVG, "polygon");
    polygon.setAttribute("class", "mask");
    polygon.setAttribute("points", scaled(mask));
    svg.append(polygon);
  }
  for (const zone of editor.zones) {
    const polygon = document.createElementNS(SVG, "polygon");
    polygon.setAttribute("points", scaled(zone.polygon));
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", zone.polygon[0][0] * 1000 + 8);
    label.setAttribute("y", zone.polygon[0][1] * 1000 + 40);
    label.textContent = zone.name;
    svg.append(polygon, label);
  }
  for (const line of editor.lines) {
    const path = document.createElementNS(SVG, "line");
    path.setAttribute("x1", line.a[0] * 1000);
    path.setAttribute("y1", line.a[1] * 1000);
    path.setAttribute("x2", line.b[0] * 1000);
    path.setAttribute("y2", line.b[1] * 1000);
    const start = document.createElementNS(SVG, "circle");
    start.setAttribute("class", "line-a");
    start.setAttribute("cx", line.a[0] * 1000);
    start.setAttribute("cy", line.a[1] * 1000);
    start.setAttribute("r", 10);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", "line-name");
    label.setAttribute("x", line.a[0] * 1000 + 12);
    label.setAttribute("y", line.a[1] * 1000 - 12);
    label.textContent = line.name;
    svg.append(path, start, label);
  }
  if (editor.draft.length) {
    const draft = document.createElementNS(SVG, "polygon");
    draft.setAttribute("class", "draft");
    draft.setAttribute("points", scaled(editor.draft));
    svg.append(draft);
    for (const [x, y] of editor.draft) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x * 1000);
      dot.setAttribute("cy", y * 1000);
      dot.setAttribute("r", 10);
      svg.append(dot);
    }
  }
  const list = $("zone-list");
  list.replaceChildren();
  editor.zones.forEach((zone, index) => {
    const rules = zone.rules.length ? zone.rules.join(", ") : "no rule";
    const when = zone.schedule ? `, active ${zone.schedule.start}-${zone.schedule.end}` : "";
    const li = element("li", {}, `${zone.name}: ${zone.polygon.length} corners, ${rules}${when}`);
    const remove = element("button", { type: "button" }, "remove");
    remove.addEventListener("click", () => {
      editor.zones.splice(index, 1);
      drawEditor();
    });
    li.append(remove);
    list.append(li);
  });
  editor.lines.forEach((line, index) => {
    const li = element("li", {}, `${line.name}: counting line`);
    const remove = element("button", { type: "button" }, "remove");
    remove.addEventListener("click", () => {
      editor.lines.splice(index, 1);
      drawEditor();
    });
    li.append(remove);
    list.append(li);
  });
  editor.masks.forEach((mask, index) => {
    const li = element("li", {}, `privacy mask ${index + 1}: ${mask.length} corners`);
    const remove = element("button", { type: "button" }, "remove");
    remove.addEventListener("click", () => {
      editor.masks.splice(index, 1);
      drawEditor();
    });
    li.append(remove);
    list.append(li);
  });
}

function status(text, ok) {
  const line = $("edit-status");
  line.textContent = text;
  line.className = ok ? "ok" : "error";
}

function addCorner(event) {
  const rect = $("edit-svg").getBoundingClientRect();
  const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
  if (drawingLine() && editor.draft.length >= 2) editor.draft = []; // a line has two ends
  editor.draft.push([round((event.clientX - rect.left) / rect.width), round((event.clientY - rect.top) / rect.height)]);
  drawEditor();
}

function addShape() {
  if (drawingMask()) {
    if (editor.draft.length < 3) return status("Place at least three corners on the picture first.", false);
    editor.masks.push(editor.draft);
    editor.draft = [];
    drawEditor();
    return status("Privacy mask added: save to apply it (the live picture turns black there).", true);
  }
  const name = $("zone-name").value.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    return status("Name it: letters, digits, '_', '.', '-' (no spaces).", false);
  }
  if (drawingLine()) {
    if (editor.draft.length !== 2) return status("Place the line's two ends on the picture first.", false);
    editor.lines = editor.lines.filter((l) => l.name !== name);
    editor.lines.push({ name: name, a: editor.draft[0], b: editor.draft[1] });
    editor.draft = [];
    $("zone-name").value = "";
    drawEditor();
    return status(`Line ${name} added: save to apply it.`, true);
  }
  if (editor.draft.length < 3) return status("Place at least three corners on the picture first.", false);
  const rule = $("zone-rule").value;
  const from = $("zone-from").value;
  const to = $("zone-to").value;
  const schedule = from || to ? { start: from || "00:00", end: to || "24:00" } : null;
  editor.zones = editor.zones.filter((z) => z.name !== name);
  editor.zones.push({ name: name, polygon: editor.draft, rules: rule ? [rule] : [], schedule: schedule });
  editor.draft = [];
  $("zone-name").value = "";
  drawEditor();
  status(`Zone ${name} added: save to apply it.`, true);
}

async function reloadCameras() {
  cameras = await getJSON("/api/cameras");
}

async function save() {
  status("Saving...", true);
  const body = { camera: editor.camera, zones: editor.zones, lines: editor.lines, masks: editor.masks };
  const result = await postJSON("/api/config/zones", body);
  if (result.body.ok) {
    await reloadCameras();
    chooseCamera(editor.camera);
    status(`Saved and applied (changed: ${result.body.changed.join(", ") || "nothing"}).`, true);
  } else {
    status("Not saved:\n" + (result.body.problems || [result.body.error]).join("\n"), false);
  }
}

async function rollback() {
  const result = await postJSON("/api/config/rollback", {});
  if (result.body.ok) {
    await reloadCameras();
    chooseCamera(editor.camera);
    status("Rolled back to the previous config.", true);
  } else {
    status("Not rolled back:\n" + (result.body.problems || [result.body.error]).join("\n"), false);
  }
}

function buildEditor() {
  const select = $("edit-camera");
  select.replaceChildren(...cameras.map((c) => element("option", { value: c.id }, c.id)));
  select.addEventListener("change", () => chooseCamera(select.value));
  $("edit-svg").addEventListener("click", addCorner);
  $("zone-add").addEventListener("click", addShape);
  $("draw-kind").addEventListener("change", () => {
    for (const id of ["rule-label", "schedule-label", "schedule-hint"]) $(id).hidden = drawingLine() || drawingMask();
    $("name-label").hidden = drawingMask(); // a mask has no name
    editor.draft = [];
    drawEditor();
  });
  $("zone-clear").addEventListener("click", () => {
    editor.draft = [];
    drawEditor();
  });
  $("zone-save").addEventListener("click", save);
  $("zone-rollback").addEventListener("click", rollback);
  chooseCamera(cameras.length ? cameras[0].id : null);
  keepFresh($("edit-image"), "zones", () => frameUrl(editor.camera, 0));
}

// -- start ------------------------------------------------------------------------------

async function start() {
  const config = await getJSON("/api/config");
  $("device").textContent = `${config.site_id} / ${config.device_id}`;
  await reloadCameras();
  buildLive();
  if (cameras.length) buildEditor();
  window.addEventListener("hashchange", showView);
  showView();
  $("selftest-run").addEventListener("click", runSelftest);
  window.setInterval(() => {
    if (visible("health")) refreshHealth();
    if (visible("events")) refreshEvents();
    if (visible("selftest") && selftestRunning) refreshSelftest();
  }, POLL_MS);
}

start();
