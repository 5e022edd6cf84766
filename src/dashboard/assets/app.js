// The Ergon dashboard: a single page over the JSON API (/api/...), no framework.
//
// Safety rule: text from the database (payloads, errors, progress messages, names) is only
// ever put into the page with textContent or attribute setters, never as HTML. el() below
// is the one way this file builds elements.
"use strict";

const POLL_MS = 500;
let config = { read_only: false };
let timer = null; // the current page's refresh timer

// el("td", {class: "mono"}, "text", childNode, ...): strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike style=
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

async function api(path, body) {
  const init = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-Ergon-Request"] = "1";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = { error: "HTTP " + res.status }; }
  if (!res.ok) throw new Error(data && data.error ? data.error : "HTTP " + res.status);
  return data;
}

function flash(message, isError) {
  const box = document.getElementById("flash");
  box.replaceChildren(el("div", { class: "msg" + (isError ? " error" : ""), "data-testid": "flash" }, message));
  setTimeout(() => { if (box.firstChild && box.firstChild.textContent === message) box.replaceChildren(); }, 6000);
}

function when(t) { return t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : "–"; }

function statusBadge(s) { return el("span", { class: "status " + s, "data-status": s }, s); }

function progressBar(percent, small) {
  const p = Math.max(0, Math.min(100, percent || 0));
  return el("div", { class: "progress" + (small ? " small" : ""), role: "progressbar",
    "aria-valuenow": p, "aria-valuemin": 0, "aria-valuemax": 100 },
    el("div", { style: "width:" + p + "%" }));
}

function actionButton(label, run, danger) {
  return el("button", { class: danger ? "danger" : null, disabled: config.read_only,
    "data-action": label.toLowerCase(), onclick: async (ev) => {
      ev.target.disabled = true;
      try { await run(); } catch (e) { flash(e.message, true); }
      finally { ev.target.disabled = config.read_only; }
    } }, label);
}

function setPage(title, ...content) {
  const main = document.getElementById("main");
  main.replaceChildren(el("h1", {}, title), ...content);
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

// ---- pages -----------------------------------------------------------------------------

async function overviewPage() {
  const o = await api("/api/overview");
  const parts = [];
  if (o.counts) {
    parts.push(el("div", { class: "cards" }, Object.entries(o.counts.by_status).map(([s, n]) =>
      el("a", { href: "#/jobs?status=" + s, class: "card", "data-count": s },
        el("div", { class: "n" }, String(n)), el("div", { class: "l" }, s)))));
  }
  const w = o.workers;
  parts.push(el("div", { class: "cards", style: "margin-top:12px" },
    el("div", { class: "card" }, el("div", { class: "n", "data-testid": "workers-alive" }, w ? String(w.alive) : "–"),
      el("div", { class: "l" }, "workers alive")),
    el("div", { class: "card" }, el("div", { class: "n" },
      o.oldest_pending_age_seconds == null ? "–" : Math.round(o.oldest_pending_age_seconds) + " s"),
      el("div", { class: "l" }, "oldest due job waiting"))));
  if (o.throughput) {
    parts.push(el("h2", {}, "Completed and failed per minute, last hour"), chart(o.throughput.buckets),
      el("div", { class: "legend muted" }, el("span", { style: "background:#3aa26b" }), "completed",
        el("span", { style: "background:#d0493a" }), "failed"));
  }
  if (o.counts) {
    const statuses = ["Pending", "Running", "Completed", "Failed", "Cancelled"];
    parts.push(el("h2", {}, "Jobs per queue"), table(["Queue", ...statuses],
      Object.entries(o.counts.by_queue).map(([q, c]) => el("tr", {}, el("td", {},
        el("a", { href: "#/jobs?queue=" + encodeURIComponent(q) }, q)),
        statuses.map((s) => el("td", {}, String(c[s] || 0)))))));
  }
  if (o.unhandled_types && o.unhandled_types.length) {
    parts.push(el("h2", {}, "Waiting for a handler"),
      el("p", { class: "muted" }, "No live worker handles these job types; their jobs wait until one does."),
      table(["Job type", "Pending"], o.unhandled_types.map((u) => el("tr", { "data-unhandled": u.job_type },
        el("td", {}, el("a", { href: "#/jobs?status=Pending&type=" + encodeURIComponent(u.job_type) }, u.job_type)),
        el("td", {}, String(u.pending))))));
  }
  if (o.queues && o.queues.length) {
    parts.push(el("h2", {}, "Queues"), table(["Queue", "State", "Pending", "Running"],
      o.queues.map((q) => el("tr", {}, el("td", {}, el("a", { href: "#/jobs?queue=" + encodeURIComponent(q.name) }, q.name)),
        el("td", {}, q.paused ? "paused" : "running"), el("td", {}, String(q.pending)), el("td", {}, String(q.running))))));
  }
  for (const u of o.unavailable || []) {
    parts.push(el("p", { class: "muted" }, u.part + ": not available from this store (" + u.message + ")"));
  }
  setPage("Overview", ...parts);
  timer = setTimeout(route, 5000);
}

function chart(buckets) {
  const W = 900, H = 160, pad = 24;
  const max = Math.max(1, ...buckets.map((b) => b.completed + b.failed));
  const bw = (W - pad) / Math.max(1, buckets.length);
  const s = svg("svg", { class: "chart", width: W, height: H + 20, viewBox: `0 0 ${W} ${H + 20}`, role: "img" });
  buckets.forEach((b, i) => {
    const hc = (b.completed / max) * (H - 10), hf = (b.failed / max) * (H - 10);
    const x = pad + i * bw;
    s.appendChild(svg("rect", { class: "c", x, y: H - hc, width: Math.max(1, bw - 2), height: hc }));
    s.appendChild(svg("rect", { class: "f", x, y: H - hc - hf, width: Math.max(1, bw - 2), height: hf }));
  });
  const label = svg("text", { x: 2, y: 12 });
  label.textContent = String(max);
  s.appendChild(label);
  if (buckets.length) {
    const first = svg("text", { x: pad, y: H + 14 });
    first.textContent = when(buckets[0].start).slice(11, 16);
    const last = svg("text", { x: W - 40, y: H + 14 });
    last.textContent = when(buckets[buckets.length - 1].start).slice(11, 16);
    s.append(first, last);
  }
  return s;
}

const FILTERS = ["status", "type", "queue", "text", "tag", "created_after", "created_before"];

async function jobsPage(params) {
  const query = new URLSearchParams();
  for (const k of [...FILTERS, "before_id"]) if (params.get(k)) query.set(k, params.get(k));
  const form = el("form", { class: "filters", "data-testid": "filters", onsubmit: (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const k of FILTERS) { const v = form.elements[k].value.trim(); if (v) q.set(k, v); }
    location.hash = "#/jobs?" + q.toString();
  } },
  el("label", {}, "Status", el("select", { name: "status" }, ["", "Pending", "Running", "Completed", "Failed", "Cancelled"]
    .map((s) => el("option", { value: s, selected: params.get("status") === s }, s || "any")))),
  ...[["type", "Type"], ["queue", "Queue"], ["text", "Text in payload or error"], ["tag", "Tag"],
     ["created_after", "Created after (ISO)"], ["created_before", "Created before (ISO)"]].map(([k, l]) =>
    el("label", {}, l, el("input", { name: k, value: params.get(k) || "", size: k === "text" ? 22 : 14 }))),
  el("button", { type: "submit" }, "Filter"));

  const data = await api("/api/jobs?" + query.toString());
  const rows = data.jobs.map((j) => el("tr", { "data-job-id": j.id },
    el("td", { class: "mono" }, el("a", { href: "#/job/" + j.id }, j.id.slice(0, 8) + "…" + j.id.slice(-4))),
    el("td", {}, j.job_type), el("td", {}, statusBadge(j.status)), el("td", {}, j.queue),
    el("td", {}, j.attempt + (j.max_attempts ? "/" + j.max_attempts : "")),
    el("td", { class: "nowrap" }, j.progress_percent == null ? "–" : [progressBar(j.progress_percent, true), " " + j.progress_percent + "%"]),
    el("td", {}, when(j.created_at)),
    el("td", { class: "clip mono" }, j.error_message || j.payload_preview)));
  const bulk = [];
  const filterBody = {};
  for (const k of FILTERS) if (params.get(k)) filterBody[k] = params.get(k);
  if (Object.keys(filterBody).length) {
    bulk.push(actionButton("Retry all matching", async () => {
      if (!confirm("Retry every Failed or Cancelled job matching this filter?")) return;
      const r = await api("/api/jobs/bulk/retry", filterBody);
      flash(r.count + " jobs retried"); route();
    }), actionButton("Delete all matching", async () => {
      if (!confirm("Delete every job matching this filter (Running jobs are kept)?")) return;
      const r = await api("/api/jobs/bulk/delete", filterBody);
      flash(r.count + " jobs deleted"); route();
    }, true));
  }
  const pager = [];
  if (params.get("before_id")) {
    const q = new URLSearchParams(query); q.delete("before_id");
    pager.push(el("a", { href: "#/jobs?" + q.toString() }, "⟵ newest"));
  }
  if (data.next_before_id) {
    const q = new URLSearchParams(query); q.set("before_id", data.next_before_id);
    pager.push(el("a", { href: "#/jobs?" + q.toString(), "data-testid": "older", style: "margin-left:16px" }, "older ⟶"));
  }
  setPage("Jobs", form, el("div", { class: "actions" }, bulk),
    data.jobs.length ? table(["Id", "Type", "Status", "Queue", "Attempt", "Progress", "Created", "Error / payload"], rows)
      : el("p", { class: "muted", "data-testid": "no-jobs" }, "No jobs match."),
    el("p", {}, pager));
}

async function jobPage(id) {
  const j = await api("/api/jobs/" + encodeURIComponent(id));
  const active = j.status === "Pending" || j.status === "Running";
  const actions = el("div", { class: "actions" },
    (j.status === "Failed" || j.status === "Cancelled") ? actionButton("Retry", async () => {
      await api("/api/jobs/" + j.id + "/retry", {}); flash("job retried"); route(); }) : null,
    active ? actionButton("Cancel", async () => {
      const r = await api("/api/jobs/" + j.id + "/cancel", {}); flash(r.result.replace("_", " ")); route(); }, true) : null,
    j.status !== "Running" ? actionButton("Delete", async () => {
      if (!confirm("Delete this job?")) return;
      await api("/api/jobs/" + j.id + "/delete", {}); flash("job deleted"); location.hash = "#/jobs"; }, true) : null);
  const kv = el("dl", { class: "kv" },
    ...[["Id", j.id], ["Type", j.job_type], ["Queue", j.queue], ["Priority", j.priority],
        ["Created", when(j.created_at)], ["Due", when(j.run_at)], ["Started", when(j.started_at)],
        ["Finished", when(j.completed_at)], ["Attempt", j.attempt + (j.max_attempts ? " of " + j.max_attempts : "")],
        ["Worker", j.worker_id || "–"], ["Heartbeat", when(j.heartbeat_at)],
        ["Rescued", j.rescue_count], ["Unique key", j.unique_key || "–"], ["Group", j.group_key || "–"],
        ["Tags", j.tags.length ? j.tags.join(", ") : "–"]]
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: k === "Id" ? "mono" : null }, String(v))]));
  const parts = [el("p", {}, statusBadge(j.status), j.cancel_requested ? " cancellation requested" : ""), actions,
    el("h2", {}, "Progress"),
    progressBar(j.progress_percent, false),
    el("p", { "data-testid": "progress-text" },
      el("b", { "data-testid": "progress-percent" }, j.progress_percent == null ? "–" : j.progress_percent + "%"), " ",
      el("span", { "data-testid": "progress-message" }, j.progress_message || "")),
    kv, el("h2", {}, "Payload"),
    el("pre", { "data-testid": "payload" }, JSON.stringify(j.job_data, null, 2))];
  if (j.result !== null) parts.push(el("h2", {}, "Result"), el("pre", { "data-testid": "result" }, JSON.stringify(j.result, null, 2)));
  if (j.meta !== null) parts.push(el("h2", {}, "Meta"), el("pre", { "data-testid": "meta" }, JSON.stringify(j.meta, null, 2)));
  if (j.error_message) parts.push(el("h2", {}, "Error"), el("pre", { "data-testid": "error" }, j.error_message));
  // The attempt history as a timeline, oldest first.
  parts.push(el("h2", {}, "Attempts"),
    j.attempts.length ? table(["#", "Worker", "Started", "Finished", "Took", "Outcome", "Error"], j.attempts.map((a) =>
      el("tr", { "data-testid": "attempt" }, el("td", {}, String(a.attempt)), el("td", { class: "mono" }, a.worker_id || "–"),
        el("td", {}, when(a.started_at)), el("td", {}, when(a.finished_at)), el("td", {}, (a.duration_ms / 1000).toFixed(3) + " s"),
        el("td", { "data-testid": "attempt-outcome" }, statusBadge(a.outcome)),
        el("td", { class: "clip" }, a.error_message || "")))) : el("p", { class: "muted" }, "No attempt has finished yet."));
  setPage("Job " + j.job_type, ...parts);
  // Live progress: poll while the job can still change.
  timer = setTimeout(route, active ? POLL_MS : 5000);
}

// A plain-language reading of the common shapes of a 5-field expression ("at 07:00, Monday
// to Friday"); "" for anything it does not know, where the page shows the expression alone.
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = ["", "January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];
function describeCron(expr, withSeconds) {
  const macros = { "@hourly": "every hour", "@daily": "every day at midnight", "@midnight": "every day at midnight",
    "@weekly": "every Sunday at midnight", "@monthly": "on the first of every month at midnight",
    "@yearly": "every 1 January at midnight", "@annually": "every 1 January at midnight" };
  const text = expr.trim().toLowerCase();
  if (macros[text]) return macros[text];
  const f = expr.trim().split(/\s+/);
  if (withSeconds || f.length !== 5) return "";
  const [mi, h, dom, mon, dow] = f;
  const num = (v) => /^\d+$/.test(v);
  const two = (v) => String(v).padStart(2, "0");
  let time = "";
  if (num(mi) && num(h)) time = "at " + two(h) + ":" + two(mi);
  else if (num(mi) && /^\d+(,\d+)+$/.test(h)) time = "at " + h.split(",").map((x) => two(x) + ":" + two(mi)).join(", ");
  else if (num(mi) && h === "*") time = mi === "0" ? "every hour" : "at minute " + mi + " of every hour";
  else if (num(mi) && /^\*\/\d+$/.test(h)) time = "at minute " + mi + " of every " + h.slice(2) + " hours";
  else if (/^\*\/\d+$/.test(mi) && h === "*") time = "every " + mi.slice(2) + " minutes";
  else if (mi === "*" && h === "*") time = "every minute";
  else return "";
  const dayName = (d) => num(d) && +d <= 7 ? DAYS[+d] : null;
  let day = "";
  if (dom === "*" && mon === "*" && (dow === "*" || dow === "?")) day = "every day";
  else if (dom === "*" && mon === "*" && dow === "1-5") day = "Monday to Friday";
  else if (dom === "*" && mon === "*" && (dow === "0,6" || dow === "6,0" || dow === "6,7")) day = "on weekends";
  else if (dom === "*" && mon === "*" && dayName(dow)) day = "on " + dayName(dow) + "s";
  else if (dom === "*" && mon === "*" && /^\d(,\d)+$/.test(dow)) day = "on " + dow.split(",").map(dayName).join(", ");
  else if (num(dom) && mon === "*" && (dow === "*" || dow === "?")) day = "on day " + dom + " of every month";
  else if (num(dom) && num(mon) && +mon >= 1 && +mon <= 12 && (dow === "*" || dow === "?")) day = "every " + dom + " " + MONTHS[+mon];
  else return "";
  return time.startsWith("every") && day === "every day" ? time : time + ", " + day;
}

async function schedulesPage() {
  const data = await api("/api/schedules");
  const rows = data.schedules.map((s) => {
    const input = el("input", { value: s.cron_expression, size: 16, "aria-label": "expression of " + s.name });
    return el("tr", { "data-schedule": s.name },
      el("td", {}, s.name), el("td", {}, s.job_type),
      el("td", {}, input, " ", actionButton("Save", async () => {
        const r = await api("/api/schedules/edit", { name: s.name, expression: input.value });
        flash("next run " + when(r.next_run_time)); route(); }),
        el("div", { class: "muted", "data-testid": "cron-description" }, describeCron(s.cron_expression, s.with_seconds))),
      el("td", {}, s.time_zone),
      el("td", { class: "mono" }, s.expression_error ? s.expression_error : s.next_occurrences.map(when).join("\n")),
      el("td", {}, when(s.last_run_time), s.last_job ? [" ", el("a", { href: "#/job/" + s.last_job.id },
        s.last_job.status ? statusBadge(s.last_job.status) : "deleted")] : ""),
      el("td", {}, s.is_enabled ? "enabled" : "disabled"),
      el("td", {}, actionButton(s.is_enabled ? "Disable" : "Enable", async () => {
        await api("/api/schedules/" + (s.is_enabled ? "disable" : "enable"), { name: s.name }); route(); }),
        " ", actionButton("Trigger", async () => {
          const r = await api("/api/schedules/trigger", { name: s.name }); flash("job " + r.job_id + " enqueued"); route(); })));
  });
  setPage("Recurring jobs", data.schedules.length ? table(["Name", "Type", "Expression", "Zone",
    "Next five", "Last run", "State", ""], rows) : el("p", { class: "muted" }, "No recurring jobs."));
  for (const td of document.querySelectorAll("td.mono")) td.style.whiteSpace = "pre";
}

async function workersPage() {
  const data = await api("/api/workers");
  setPage("Workers", data.workers.length ? table(["Name", "Host", "PID", "Started", "Heartbeat", "Running jobs"],
    data.workers.map((w) => el("tr", {}, el("td", {}, w.name, w.alive ? "" : " (silent)"), el("td", {}, w.host),
      el("td", {}, String(w.pid)), el("td", {}, when(w.started_at)), el("td", {}, when(w.heartbeat_at)),
      el("td", {}, w.running_jobs.length ? w.running_jobs.map((j) => el("div", {},
        el("a", { href: "#/job/" + j.id }, j.job_type), " ", progressBar(j.progress_percent, true))) : "–"))))
    : el("p", { class: "muted" }, "No worker is registered."));
  timer = setTimeout(route, 3000);
}

async function queuesPage() {
  const data = await api("/api/queues");
  setPage("Queues", data.queues.length ? table(["Queue", "State", "Pending", "Running", ""],
    data.queues.map((q) => el("tr", { "data-queue": q.name }, el("td", {}, q.name), el("td", {}, q.paused ? "paused" : "running"),
      el("td", {}, String(q.pending)), el("td", {}, String(q.running)),
      el("td", {}, actionButton(q.paused ? "Resume" : "Pause", async () => {
        await api("/api/queues/" + (q.paused ? "resume" : "pause"), { name: q.name }); route(); })))))
    : el("p", { class: "muted" }, "No queue has jobs waiting or running."));
}

async function auditPage() {
  const data = await api("/api/audit?limit=200");
  setPage("Audit log", data.entries.length ? table(["When", "Who", "What", "Target", "Detail"],
    data.entries.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.actor), el("td", {}, a.action),
      el("td", { class: "mono" }, a.target), el("td", {}, a.detail))))
    : el("p", { class: "muted" }, "No operator action yet."));
}

// ---- routing ---------------------------------------------------------------------------

async function route() {
  clearTimeout(timer);
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = hash.split("?");
  const params = new URLSearchParams(qs || "");
  const section = path.split("/")[1] || "overview";
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.nav === (section === "job" ? "jobs" : section));
  }
  try {
    if (path === "/" || path === "") await overviewPage();
    else if (path === "/jobs") await jobsPage(params);
    else if (path.startsWith("/job/")) await jobPage(decodeURIComponent(path.slice(5)));
    else if (path === "/schedules") await schedulesPage();
    else if (path === "/workers") await workersPage();
    else if (path === "/queues") await queuesPage();
    else if (path === "/audit") await auditPage();
    else setPage("Not found", el("p", {}, "No page " + path));
  } catch (e) {
    setPage("Error", el("p", { class: "muted", "data-testid": "page-error" }, e.message));
  }
}

async function boot() {
  try { config = await api("/api/config"); } catch (e) { /* keep defaults; pages show the error */ }
  if (config.read_only) document.getElementById("mode").textContent = "read-only";
  window.addEventListener("hashchange", route);
  route();
}

boot();
