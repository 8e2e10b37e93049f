// The bellows dashboard: one page over the control API, no build step.
// Reads poll every second; changes carry the control token (kept in this tab's
// sessionStorage only) and say they come from the dashboard, for the audit trail.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { status: null, instances: [], targets: [], alarms: [], zones: [], tables: [], refreshes: {}, range: 300 };

// ---- the token -------------------------------------------------------------

(function takeTokenFromFragment() {
  const m = location.hash.match(/token=([0-9a-fA-F]+)/);
  if (m) {
    sessionStorage.setItem("bellows-token", m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function token() {
  return sessionStorage.getItem("bellows-token");
}

function showAuth() {
  const el = $("#auth");
  if (token()) {
    el.textContent = "changes enabled";
    el.className = "pill ok";
    el.title = "this tab holds the control token";
  } else {
    el.textContent = "read only";
    el.className = "pill";
    el.title = "click to give the control token";
  }
}

function askToken() {
  return new Promise((resolve) => {
    const d = $("#token-dialog");
    $("#token-input").value = "";
    d.onclose = () => {
      const v = $("#token-input").value.trim();
      if (d.returnValue === "ok" && v) {
        sessionStorage.setItem("bellows-token", v);
        showAuth();
        resolve(true);
      } else {
        resolve(false);
      }
    };
    d.showModal();
  });
}

// ---- the API ---------------------------------------------------------------

async function api(path, opts = {}) {
  const headers = { "X-Bellows-Source": "dashboard" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.method && opts.method !== "GET") {
    if (!token() && !(await askToken())) throw new Error("no token: nothing was changed");
    headers["Authorization"] = "Bearer " + token();
  }
  const resp = await fetch(path, {
    method: opts.method || "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!resp.ok) {
    if (resp.status === 401) {
      sessionStorage.removeItem("bellows-token");
      showAuth();
    }
    const msg = data && data.error ? data.error.message : resp.status + " " + text;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function toast(text, bad) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "toast" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 5000);
}

function confirmDo(text) {
  return new Promise((resolve) => {
    const d = $("#confirm");
    $("#confirm-text").textContent = text;
    d.onclose = () => resolve(d.returnValue === "ok");
    d.showModal();
  });
}

// An action: confirm, call, say how it went, refresh.
async function act(question, path, opts, done) {
  if (question && !(await confirmDo(question))) return;
  try {
    const r = await api(path, opts);
    toast(done || "done");
    poll();
    return r;
  } catch (e) {
    toast(e.message, true);
  }
}

// ---- small helpers ---------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "-";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

// ---- topology --------------------------------------------------------------

/** Whether zone `z` is in an outage. */
function zoneOut(z) {
  return state.zones.some((x) => x.zone === z && !x.available);
}

function renderTopology() {
  const s = state.status;
  if (!s) return;
  const listeners = el("div", { class: "col" }, el("h3", {}, "listeners"));
  for (const l of s.listeners) {
    const input = el("input", { placeholder: "CIDR", size: 14, "aria-label": "CIDR to allow on " + l.name });
    listeners.append(el("div", { class: "card", "data-listener": l.name },
      el("div", { class: "name" }, l.name),
      el("div", { class: "sub" }, "http://" + l.address + "/ → " + l.target_groups.join(", ")),
      el("div", {}, l.ingress.length === 0 ? el("span", { class: "sub" }, "no ingress: every connection is dropped") : null,
        l.ingress.map((c) => el("span", { class: "cidr" }, c,
          el("button", { class: "danger", title: "revoke", onclick: () => act(
            `Revoke ${c} on listener ${l.name}? Connections from it will be dropped.`,
            `/api/v1/listeners/${encodeURIComponent(l.name)}/ingress/revoke`,
            { method: "POST", body: { cidr: c } }, `revoked ${c}`) }, "×")))),
      el("div", {}, input, el("button", { onclick: () => input.value && act(
        `Authorize ${input.value} on listener ${l.name}?`,
        `/api/v1/listeners/${encodeURIComponent(l.name)}/ingress/authorize`,
        { method: "POST", body: { cidr: input.value.trim() } }, `authorized ${input.value}`) }, "authorize"))));
  }
  const tgNames = new Set();
  s.listeners.forEach((l) => l.target_groups.forEach((t) => tgNames.add(t)));
  s.groups.forEach((g) => g.target_groups.forEach((t) => tgNames.add(t)));
  const tgs = el("div", { class: "col" }, el("h3", {}, "target groups"));
  for (const name of tgNames) {
    const ts = state.targets.filter((t) => t.target_group === name);
    const healthy = ts.filter((t) => t.state === "healthy").length;
    const anomalous = ts.filter((t) => t.anomaly === "anomalous").length;
    tgs.append(el("div", { class: "card", "data-target-group": name },
      el("div", { class: "name" }, name),
      el("div", { class: "sub" }, `${healthy} healthy of ${ts.length} targets` +
        (anomalous ? ` · ${anomalous} anomalous, its traffic shifted to the others` : "")),
      el("div", {}, ts.map((t) => el("span", {
        class: "chip " + (t.state === "healthy" ? "InService" : t.state === "unhealthy" ? "Terminating" : "Pending") +
          (t.anomaly === "anomalous" ? " anomalous" : ""),
        title: `${t.instance} ${t.address} ${t.state}${t.reason ? ": " + t.reason.description : ""} (${t.outstanding} in flight)` +
          (t.anomaly ? `, ${t.anomaly}, share ${Math.round(t.weight * 100)}%` : ""),
      })))));
  }
  const groups = el("div", { class: "col" }, el("h3", {}, "groups → instances by zone"));
  for (const g of s.groups) {
    const mine = state.instances.filter((i) => i.group === g.name);
    groups.append(el("div", { class: "card", "data-group": g.name },
      el("div", { class: "name" }, g.name, " ", el("span", { class: "sub" },
        `desired ${g.desired} · in service ${g.in_service} · pending ${g.pending} · min ${g.min} max ${g.max}`)),
      el("div", {}, g.zones.map((z) => el("div", { class: "zone" + (zoneOut(z) ? " outage" : ""), "data-zone": z },
        el("div", { class: "label" }, z, zoneOut(z) ? " (outage) " : " ", zoneOut(z)
          ? el("button", { title: "end the outage", onclick: () => act(
            `End the outage of zone ${z}? Groups move instances back into it, launching first.`,
            `/api/v1/zones/${encodeURIComponent(z)}`, { method: "PUT", body: { available: true } }, `zone ${z} restored`) }, "restore")
          : el("button", { class: "danger", title: "fail the zone", onclick: () => act(
            `Fail zone ${z}? Every instance in it is killed at once and nothing is launched there until it is restored.`,
            `/api/v1/zones/${encodeURIComponent(z)}`, { method: "PUT", body: { available: false } }, `zone ${z} failed`) }, "fail")),
        mine.filter((i) => i.zone === z).map((i) => el("span", {
          class: `chip ${i.lifecycle} ${i.health === "Unhealthy" ? "unhealthy" : ""}`,
          title: `${i.id} ${i.private_ip || ""} ${i.lifecycle} ${i.health}`,
        })))))));
  }
  $("#topology").replaceChildren(listeners, tgs, groups);
}

// ---- groups ----------------------------------------------------------------

function renderGroups() {
  const s = state.status;
  if (!s) return;
  const rows = s.groups.map((g) => {
    const desired = el("input", { type: "number", min: g.min, max: g.max, value: g.desired, "aria-label": "desired capacity of " + g.name });
    const pct = el("input", { type: "number", min: 0, max: 100, value: 90, "aria-label": "minimum healthy percentage" });
    const r = state.refreshes[g.name];
    const running = r && r.status === "InProgress";
    return el("div", { class: "group", "data-group": g.name },
      el("span", { class: "name" }, g.name),
      el("span", { class: "counts" },
        el("span", {}, `min ${g.min}`), el("span", {}, `max ${g.max}`),
        el("span", {}, `desired ${g.desired}`), el("span", { class: "state-InService" }, `in service ${g.in_service}`),
        el("span", { class: "state-Pending" }, `pending ${g.pending}`), el("span", { class: "state-Terminating" }, `terminating ${g.terminating}`)),
      el("span", {}, "desired ", desired, el("button", { class: "set-desired", onclick: () => act(
        `Set the desired capacity of ${g.name} to ${desired.value}?`,
        `/api/v1/groups/${encodeURIComponent(g.name)}/capacity`,
        { method: "PUT", body: { desired: Number(desired.value) } }, `desired capacity of ${g.name} set to ${desired.value}`) }, "set")),
      running
        ? el("span", {}, `refresh ${r.percentage_complete}% — ${r.status_reason} `,
          el("button", { class: "danger", onclick: () => act(`Cancel the instance refresh of ${g.name}?`,
            `/api/v1/groups/${encodeURIComponent(g.name)}/refresh`, { method: "DELETE" }, "refresh cancelled") }, "cancel refresh"))
        : el("span", {}, "refresh keeping ", pct, "% healthy ",
          el("button", { onclick: () => act(`Replace every instance of ${g.name}, keeping ${pct.value}% healthy?`,
            `/api/v1/groups/${encodeURIComponent(g.name)}/refresh`,
            { method: "POST", body: { min_healthy_percentage: Number(pct.value) } }, "instance refresh started") }, "start refresh"),
          r ? el("span", { class: "muted" }, ` last: ${r.status}, ${r.status_reason}`) : null));
  });
  $("#groups").replaceChildren(...rows);
}

// ---- instances and logs ----------------------------------------------------

function renderInstances() {
  const rows = state.instances.map((i) => el("tr", { class: "clickable", "data-instance": i.id, onclick: (e) => {
    if (e.target.tagName !== "BUTTON") openLogs(i.id);
  } },
    el("td", {}, i.id), el("td", {}, i.group), el("td", {}, i.zone), el("td", {}, i.private_ip || "-"),
    el("td", { class: "state-" + i.lifecycle }, i.lifecycle), el("td", { class: "health-" + i.health }, i.health),
    el("td", {}, i.cpu_percent === null || i.cpu_percent === undefined ? "-" : i.cpu_percent.toFixed(1) + "%"),
    el("td", {}, fmtBytes(i.memory_bytes)),
    el("td", {}, age(i.launched_at)),
    el("td", {}, i.protected ? "yes" : "no"),
    el("td", {},
      el("button", { onclick: () => act(`${i.protected ? "Clear" : "Set"} scale-in protection of ${i.id}?`,
        `/api/v1/instances/${i.id}/protection`, { method: "PUT", body: { protected: !i.protected } }) }, i.protected ? "unprotect" : "protect"),
      " ",
      el("button", { title: "start a 60 s CPU stress (the stress app)", onclick: () => act(`Start a 60 s CPU stress on ${i.id}?`,
        `/api/v1/instances/${i.id}/stress`, { method: "POST", body: { seconds: 60, workers: 1 } }, "stress started") }, "stress"),
      " ",
      el("button", { class: "danger", onclick: () => act(`Terminate ${i.id}? The group launches a replacement.`,
        `/api/v1/instances/${i.id}/terminate`, { method: "POST", body: { decrement_desired: false } }, `terminating ${i.id}`) }, "terminate"))));
  $("#instances tbody").replaceChildren(...rows);
}

let logAbort = null;
async function openLogs(id) {
  if (logAbort) logAbort.abort();
  logAbort = new AbortController();
  $("#logs").classList.remove("hidden");
  $("#logs-title").textContent = "log of " + id + " (live)";
  const pre = $("#logs-body");
  pre.textContent = "";
  try {
    const resp = await fetch(`/api/v1/instances/${id}/logs?follow=true&tail=16384`, { signal: logAbort.signal });
    if (!resp.ok) throw new Error((await resp.json()).error.message);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += dec.decode(value, { stream: true });
      if (pre.textContent.length > 200000) pre.textContent = pre.textContent.slice(-100000);
      if (stick) pre.scrollTop = pre.scrollHeight;
    }
    $("#logs-title").textContent = "log of " + id + " (ended)";
  } catch (e) {
    if (e.name !== "AbortError") pre.textContent += "\n[" + e.message + "]";
  }
}
$("#logs-close").addEventListener("click", () => {
  if (logAbort) logAbort.abort();
  $("#logs").classList.add("hidden");
});

// ---- DynamoDB tables ---------------------------------------------------------

function renderTables() {
  const rows = state.tables.map((t) => el("tr", { "data-table": t.name },
    el("td", {}, t.name),
    el("td", {}, t.key.join(", ")),
    el("td", {}, t.billing_mode === "PAY_PER_REQUEST" ? "on demand" : `${t.read_capacity} RCU / ${t.write_capacity} WCU`),
    el("td", {}, String(t.items)),
    el("td", {}, `${t.bytes} B`)));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "none (made through the AWS endpoint)")));
  $("#tables tbody").replaceChildren(...rows);
}

// ---- alarms, activities, audit ---------------------------------------------

function renderAlarms() {
  const rows = [];
  for (const a of state.alarms) {
    const hist = el("tr", { class: "hidden" }, el("td", { colspan: 5 },
      el("ul", { class: "feed" }, a.history.map((t) => el("li", {}, el("span", { class: "time" }, clock(t.time)),
        `${t.from} → ${t.to}: ${t.reason}`)))));
    rows.push(el("tr", { class: "clickable", "data-alarm": a.name, onclick: () => hist.classList.toggle("hidden") },
      el("td", {}, a.name),
      el("td", { class: "a-" + a.state }, a.state),
      el("td", {}, `${a.statistic} ${a.metric} ${a.comparison} ${a.threshold} for ${a.datapoints_to_alarm} of ${a.evaluation_periods} × ${a.period}`),
      el("td", {}, a.last_value === null || a.last_value === undefined ? "-" : Number(a.last_value).toFixed(2)),
      el("td", {}, age(a.since))));
    rows.push(hist);
  }
  $("#alarms tbody").replaceChildren(...rows);
}

async function pollFeeds() {
  try {
    const [acts, audit] = await Promise.all([api("/api/v1/activities?limit=50"), api("/api/v1/audit?limit=50")]);
    $("#activities").replaceChildren(...acts.map((a) => el("li", { class: a.status === "Failed" ? "failed" : "" },
      el("span", { class: "time" }, clock(a.start)), `${a.status}: ${a.description}`,
      // Why a launch waits (crash-loop backoff) or how an instance ended (OOMKilled, a
      // SIGKILL after the stop timeout) is in the status message.
      a.status_message ? el("div", {}, a.status_message) : null, el("div", { class: "muted" }, a.cause))));
    $("#audit").replaceChildren(...audit.map((r) => el("li", { class: r.result === "ok" ? "" : "failed" },
      el("span", { class: "time" }, clock(r.time)),
      `${r.actor}${r.source !== r.actor ? " (" + r.source + ")" : ""} ${r.action} ${r.target}`,
      el("div", { class: "muted" }, `before ${JSON.stringify(r.before)} → after ${JSON.stringify(r.after)} · ${r.result}`))));
  } catch (e) {
    // The next poll tries again; the header says when bellows is gone.
  }
}

// ---- investigations ----------------------------------------------------------

function evidenceChart(series) {
  const div = el("div", { class: "chart" }, el("div", { class: "title" },
    `${series.key.namespace} ${series.key.name} ${Object.entries(series.key.dimensions).map(([k, v]) => k + "=" + v).join(" ")} (baseline ${series.baseline.toFixed(2)})`));
  const xs = series.points.map((p) => p[0] / 1000);
  const ys = series.points.map((p) => p[1]);
  const base = xs.map(() => series.baseline);
  setTimeout(() => new uPlot({
    width: Math.max(300, div.clientWidth - 12), height: 150,
    scales: { x: { time: true } },
    axes: [{ stroke: "#7d8b99", grid: { stroke: "#26313d" } }, { stroke: "#7d8b99", grid: { stroke: "#26313d" }, size: 50 }],
    series: [{}, { label: "value", stroke: "#f85149", width: 1.5 }, { label: "baseline", stroke: "#7d8b99", dash: [4, 4] }],
  }, [xs, ys, base], div), 0);
  return div;
}

function renderReport(r) {
  const out = [el("p", {}, el("strong", {}, r.title), el("span", { class: "muted" },
    ` — window from ${new Date(r.since).toISOString().slice(11, 19)} to ${new Date(r.generated).toISOString().slice(11, 19)} UTC`))];
  if (r.hypotheses.length === 0) out.push(el("p", { class: "muted" }, "No known cause matches what was recorded."));
  r.hypotheses.forEach((h, i) => {
    const charts = h.evidence.filter((e) => e.series).map((e) => evidenceChart(e.series));
    out.push(el("div", { class: "hypothesis" + (h.confidence < 0.5 ? " unlikely" : ""), "data-cause": h.cause },
      el("h3", {}, `${i + 1}. ${h.title}`, el("span", { class: "confidence" }, `${Math.round(h.confidence * 100)}%${h.confidence < 0.5 ? " (unlikely)" : ""}`)),
      el("ul", { class: "evidence" }, h.evidence.map((e) => el("li", {},
        el("span", { class: "kind" }, e.kind), e.time ? el("span", { class: "time" }, clock(e.time) + " ") : null, e.text))),
      charts.length ? el("div", { class: "evidence-charts" }, charts) : null,
      el("div", { class: "remedy" }, "Remedy: " + h.remedy.text, el("code", {}, h.remedy.command))));
  });
  $("#report").replaceChildren(...out);
}

async function showInvestigation(path) {
  $("#report").replaceChildren(el("p", { class: "muted" }, "investigating…"));
  try {
    renderReport(await api(path));
  } catch (e) {
    $("#report").replaceChildren(el("p", { class: "failed" }, e.message));
  }
}

async function pollIncidents() {
  try {
    const list = await api("/api/v1/incidents");
    const sel = $("#incidents");
    const current = sel.value;
    sel.replaceChildren(el("option", { value: "" }, list.length ? "—" : "no incident yet"),
      ...list.map((i) => el("option", { value: i.investigation },
        `#${i.id} ${i.alarm} ${i.resolved ? "resolved" : "OPEN"}: ${i.title}`)));
    sel.value = current;
  } catch (_) { /* next time */ }
}

$("#investigate").addEventListener("click", () =>
  showInvestigation(`/api/v1/investigate?since=${$("#inv-since").value}`));
$("#incidents").addEventListener("change", (e) => {
  if (e.target.value) showInvestigation(`/api/v1/investigations/${e.target.value}`);
});

// ---- the event stream ------------------------------------------------------

const KINDS = ["activity", "lifecycle", "health", "protection", "target_health", "alarm", "ingress", "capacity", "audit", "refresh"];

function describe(kind, e) {
  switch (kind) {
    case "lifecycle": return `${e.instance} ${e.from || "-"} → ${e.to} (${e.group}, ${e.zone})`;
    case "health": return `${e.instance} ${e.health}: ${e.reason}`;
    case "target_health": return `${e.target_group}/${e.instance} ${e.from} → ${e.to}${e.reason ? ": " + e.reason : ""}`;
    case "alarm": return `alarm ${e.alarm} ${e.from} → ${e.to}`;
    case "capacity": return `${e.group} desired ${e.before.desired} → ${e.after.desired}`;
    case "ingress": return `${e.listener} ${e.authorized ? "authorized" : "revoked"} ${e.cidr} by ${e.actor}`;
    case "activity": return `${e.activity.status}: ${e.activity.description}`;
    case "protection": return `${e.instance} protection ${e.protected ? "on" : "off"}`;
    case "audit": return `${e.record.actor} ${e.record.action} ${e.record.target}: ${e.record.result}`;
    case "refresh": return `refresh of ${e.refresh.group}: ${e.refresh.status} ${e.refresh.percentage_complete}%`;
    default: return kind;
  }
}

function connectEvents() {
  const src = new EventSource("/api/v1/events");
  src.onopen = () => { $("#live").textContent = "live"; $("#live").className = "pill ok"; };
  src.onerror = () => { $("#live").textContent = "reconnecting…"; $("#live").className = "pill bad"; };
  for (const kind of KINDS) {
    src.addEventListener(kind, (m) => {
      const e = JSON.parse(m.data);
      const time = e.time || (e.activity && (e.activity.end || e.activity.start)) || (e.record && e.record.time) || Date.now();
      const feed = $("#events");
      feed.prepend(el("li", { "data-kind": kind }, el("span", { class: "time" }, clock(time)), describe(kind, e)));
      while (feed.children.length > 200) feed.lastChild.remove();
      soon();
    });
  }
}

let soonTimer = null;
function soon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => { soonTimer = null; poll(); pollFeeds(); }, 250);
}

// ---- charts ----------------------------------------------------------------

// Each chart: series from metric queries; `pick` keeps the series of one shape (the
// load balancer's totals have one dimension, per target group ones have another).
const CHARTS = [
  { title: "requests / s", series: [{ label: "requests", ns: "AWS/ApplicationELB", name: "RequestCount", pick: (d) => d.LoadBalancer && !d.TargetGroup }] },
  { title: "5xx / s", series: [
    { label: "target 5xx", ns: "AWS/ApplicationELB", name: "HTTPCode_Target_5XX_Count", pick: (d) => d.TargetGroup && !d.LoadBalancer },
    { label: "ELB 5xx", ns: "AWS/ApplicationELB", name: "HTTPCode_ELB_5XX_Count", pick: (d) => d.LoadBalancer && !d.TargetGroup },
  ] },
  { title: "target response time (s)", series: [
    { label: "p50", ns: "bellows/ApplicationELB", name: "TargetResponseTimeP50", stat: "Average" },
    { label: "p99", ns: "bellows/ApplicationELB", name: "TargetResponseTimeP99", stat: "Maximum" },
  ] },
  { title: "CPU utilization (%)", perGroup: true, series: [{ label: "CPU", ns: "AWS/EC2", name: "CPUUtilization", pick: (d) => d.AutoScalingGroupName }] },
  { title: "capacity", series: [
    { label: "desired", ns: "AWS/AutoScaling", name: "GroupDesiredCapacity" },
    { label: "in service", ns: "AWS/AutoScaling", name: "GroupInServiceInstances" },
    { label: "pending", ns: "AWS/AutoScaling", name: "GroupPendingInstances" },
  ] },
  { title: "active connections", series: [{ label: "connections", ns: "AWS/ApplicationELB", name: "ActiveConnectionCount", pick: (d) => d.LoadBalancer && !d.TargetGroup }] },
];
const COLORS = ["#58a6ff", "#f85149", "#3fb950", "#d29922", "#bc8cff", "#39c5cf"];

function periodFor(range) {
  return range <= 900 ? 1 : range <= 3600 ? 5 : 15;
}

const plots = [];

function makeCharts() {
  const box = $("#charts");
  for (const c of CHARTS) {
    const div = el("div", { class: "chart", "data-chart": c.title }, el("div", { class: "title" }, c.title));
    box.append(div);
    plots.push({ spec: c, div, plot: null, labels: null });
  }
}

async function series(q, since, period) {
  const params = new URLSearchParams({ namespace: q.ns, name: q.name, stat: q.stat || "Average", period: period + "s", since: since + "s" });
  const r = await api("/api/v1/metrics/query?" + params);
  return r.series.filter((s) => !q.pick || q.pick(s.key.dimensions));
}

async function pollCharts() {
  if (typeof uPlot === "undefined") return;
  const range = state.range;
  const period = periodFor(range);
  const end = Math.floor(Date.now() / 1000 / period) * period;
  const xs = [];
  for (let t = end - range; t <= end; t += period) xs.push(t);
  const index = new Map(xs.map((t, i) => [t, i]));
  for (const p of plots) {
    const lines = [];
    try {
      for (const q of p.spec.series) {
        for (const s of await series(q, range, period)) {
          const dims = Object.values(s.key.dimensions);
          const label = p.spec.series.length === 1 || p.spec.perGroup ? (dims.join(" ") || q.label) : q.label + (dims.length > 1 ? " " + dims.join(" ") : "");
          const ys = new Array(xs.length).fill(null);
          for (const [t, v] of s.points) {
            const i = index.get(Math.floor(t / 1000 / period) * period);
            if (i !== undefined) ys[i] = v;
          }
          lines.push({ label: p.spec.series.length === 1 && !p.spec.perGroup ? q.label : label, ys });
        }
      }
    } catch (e) {
      continue;
    }
    const labels = lines.map((l) => l.label).join("|");
    const data = [xs, ...lines.map((l) => l.ys)];
    if (!p.plot || p.labels !== labels) {
      if (p.plot) p.plot.destroy();
      const width = Math.max(300, p.div.clientWidth - 12);
      p.plot = new uPlot({
        width, height: 180,
        scales: { x: { time: true } },
        axes: [{ stroke: "#7d8b99", grid: { stroke: "#26313d" } }, { stroke: "#7d8b99", grid: { stroke: "#26313d" }, size: 50 }],
        series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false }))],
      }, data, p.div);
      p.labels = labels;
    } else {
      p.plot.setData(data);
    }
  }
}

// ---- polling ---------------------------------------------------------------

async function poll() {
  try {
    const [status, instances, targets, alarms, zones, tables] = await Promise.all([
      api("/api/v1/status"), api("/api/v1/instances"), api("/api/v1/targets"), api("/api/v1/alarms"),
      api("/api/v1/zones"), api("/api/v1/tables"),
    ]);
    Object.assign(state, { status, instances, targets, alarms, zones, tables });
    $("#stack").textContent = status.stack;
    $("#uptime").textContent = "up " + age(status.started_at) + " · pid " + status.pid;
    for (const g of status.groups) state.refreshes[g.name] = g.refresh;
    // Leave a form alone while someone types in it.
    const typing = document.activeElement && document.activeElement.tagName === "INPUT";
    renderTopology();
    if (!typing) renderGroups();
    renderInstances();
    renderAlarms();
    renderTables();
  } catch (e) {
    $("#live").textContent = "bellows is not answering";
    $("#live").className = "pill bad";
  }
}

$("#range").addEventListener("change", (e) => {
  state.range = Number(e.target.value);
  for (const p of plots) { if (p.plot) p.plot.destroy(); p.plot = null; }
  pollCharts();
});
$("#auth").addEventListener("click", () => { if (!token()) askToken(); });

window.addEventListener("DOMContentLoaded", () => {
  showAuth();
  makeCharts();
  poll();
  pollFeeds();
  pollCharts();
  connectEvents();
  setInterval(poll, 1000);
  setInterval(pollCharts, 1000);
  setInterval(pollFeeds, 3000);
  pollIncidents();
  setInterval(pollIncidents, 5000);
});

// For the curious (and the browser test): the page's state and charts.
window.bellows = { state, plots };
