// colo's portal: one page over the GraphQL API, with the session cookie (HttpOnly, set by
// /portal/login) and the CSRF token (the colo_csrf cookie, sent back as X-CSRF-Token on changes).
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)colo_csrf=([^;]+)/);
  return m ? m[1] : "";
}

async function gql(query, variables = {}) {
  const r = await fetch("/graphql", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify({ query, variables }),
  });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) { showLogin("Your session has ended: log in again."); throw new Error("not logged in"); }
  if (body.errors && body.errors.length) throw new Error(body.errors[0].message);
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body.data;
}

// ---- log in / out ----
function showLogin(message = "") {
  for (const id of ["catalogue", "volumes", "labs"]) $("#" + id).hidden = true;
  $("#tabs").hidden = true; $("#logout").hidden = true; $("#who").textContent = "";
  $("#login").hidden = false; $("#login-error").textContent = message;
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/portal/login", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("#token").value }) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("#login-error").textContent = body.error || "not accepted"; return; }
  $("#token").value = "";
  start();
});

$("#logout").addEventListener("click", async () => {
  await fetch("/portal/logout", { method: "POST", credentials: "same-origin" });
  showLogin("Logged out.");
});

// ---- tabs ----
function show(tab) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const id of ["catalogue", "volumes", "labs"]) $("#" + id).hidden = id !== tab;
  if (tab === "catalogue") search();
  if (tab === "volumes") loadVolumes();
  if (tab === "labs") loadLabs();
}
for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.tab));

async function start() {
  try {
    const { me } = await gql("{ me { name admin } }");
    $("#login").hidden = true; $("#tabs").hidden = false; $("#logout").hidden = false;
    $("#who").textContent = me.name + (me.admin ? " (admin)" : "");
    show("catalogue");
  } catch (e) {
    if (e.message !== "not logged in") showLogin(e.message);
  }
}

// ---- catalogue ----
$("#search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });

function toggleFacet(name, value) {
  const term = `${name}:${/\s/.test(value) ? `"${value}"` : value}`;
  const q = $("#q").value;
  $("#q").value = q.includes(term) ? q.replace(term, "").replace(/\s+/g, " ").trim() : (q + " " + term).trim();
  search();
}

async function search() {
  const q = $("#q").value;
  let data;
  try {
    data = await gql(`query($q: String!) { search(q: $q, first: 50) { total
      items { type key title description mission instrument wavelength }
      facets { name values { value count } } } }`, { q });
  } catch (e) { $("#total").textContent = e.message; $("#items").innerHTML = ""; $("#facets").innerHTML = ""; return; }
  const s = data.search;
  $("#total").textContent = `${s.total} result${s.total === 1 ? "" : "s"}`;
  $("#facets").innerHTML = s.facets.filter((f) => f.values.length).map((f) => `<h4>${esc(f.name)}</h4>` +
    f.values.map((v) => `<button class="facet${q.includes(`${f.name}:`) && q.includes(v.value) ? " on" : ""}" data-facet="${esc(f.name)}" data-value="${esc(v.value)}">
      <span>${esc(v.value)}</span><span class="n">${v.count}</span></button>`).join("")).join("");
  for (const b of document.querySelectorAll(".facet")) b.addEventListener("click", () => toggleFacet(b.dataset.facet, b.dataset.value));
  $("#items").innerHTML = s.items.map((i) => `<li><span class="badge">${esc(i.type)}</span><span class="title">${esc(i.title)}</span>
      ${i.type === "datalab-image" ? `<button class="small launch-image" data-key="${esc(i.key)}">Launch</button>` : ""}
      ${i.type === "volume" ? `<button class="small add-volume" data-key="${esc(i.key)}">+ add to my volumes</button>` : ""}
      <div class="meta">${esc([i.key, i.mission, i.instrument, i.wavelength].filter(Boolean).join(" · "))}</div>
      <div>${esc(i.description)}</div></li>`).join("");
  for (const b of document.querySelectorAll(".launch-image")) b.addEventListener("click", () => { show("labs"); launchImage = b.dataset.key; });
  for (const b of document.querySelectorAll(".add-volume")) b.addEventListener("click", async () => {
    try { await gql("mutation($k: String!) { addVolumeFromCatalog(key: $k) { name } }", { k: b.dataset.key }); show("volumes"); }
    catch (e) { alert(e.message); }
  });
}

// ---- volumes ----
let myVolumes = [];
async function loadVolumes() {
  const { volumes } = await gql("{ volumes { name reference kind owner access url credentials } }");
  myVolumes = volumes;
  $("#volume-table tbody").innerHTML = volumes.map((v) => `<tr><td>${esc(v.name)}</td><td>${esc(v.kind)}</td>
    <td>${v.access === "READ_WRITE" ? "read-write" : "read-only"}</td><td>${esc(v.url)}</td><td>${esc(v.credentials.join(", "))}</td>
    <td>${v.kind === "user" || v.kind === "selection" ? `<button class="small danger remove-volume" data-ref="${esc(v.reference)}" data-kind="${esc(v.kind)}" data-name="${esc(v.name)}">remove</button>` : ""}</td></tr>`).join("");
  for (const b of document.querySelectorAll(".remove-volume")) b.addEventListener("click", async () => {
    if (!confirm(`Remove ${b.dataset.name}? (The files stay where they are.)`)) return;
    try {
      if (b.dataset.kind === "selection") await gql("mutation($n: String!) { removeSelection(name: $n) }", { n: b.dataset.name });
      else await gql("mutation($r: String!) { removeVolume(reference: $r) }", { r: b.dataset.ref });
      loadVolumes();
    } catch (e) { alert(e.message); }
  });
}

$("#add-custom").addEventListener("click", () => { $("#custom-form").hidden = !$("#custom-form").hidden; });
$("#custom-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const input = { name: f.get("name"), url: f.get("url"), access: f.get("readOnly") ? "READ_ONLY" : "READ_WRITE" };
  for (const k of ["username", "password", "endpoint", "accessKeyId", "secretAccessKey"]) if (f.get(k)) input[k] = f.get(k);
  $("#custom-error").textContent = "checking the server…";
  try {
    await gql("mutation($i: AddVolumeInput!) { addVolume(input: $i) { name } }", { i: input });
    e.target.reset(); $("#custom-form").hidden = true; $("#custom-error").textContent = ""; loadVolumes();
  } catch (err) { $("#custom-error").textContent = err.message; }
});

// ---- datalabs ----
let launchImage = null;

async function loadLabs() {
  const data = await gql(`{ datalabImages { key title }
    volumes { name access }
    datalabs { id name image owner state reason base expiresAt sharedWith } }`);
  const sel = $("#launch-form select[name=image]");
  const chosen = launchImage || sel.value;
  sel.innerHTML = data.datalabImages.map((i) => `<option value="${esc(i.key)}">${esc(i.title)}</option>`).join("");
  if (chosen) sel.value = chosen;
  launchImage = null;
  const checked = new Set([...document.querySelectorAll("#launch-volumes input:checked")].map((i) => i.value));
  $("#launch-volumes").innerHTML = data.volumes.map((v) => `<label class="check"><input type="checkbox" value="${esc(v.name)}"
    ${checked.has(v.name) ? "checked" : ""}> ${esc(v.name)} <span class="muted">${v.access === "READ_WRITE" ? "read-write" : "read-only"}</span></label>`).join("");
  renderLabs(data.datalabs);
}

function left(expiresAt) {
  if (!expiresAt) return "";
  const s = Math.max(0, expiresAt - Math.floor(Date.now() / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function renderLabs(labs) {
  $("#lab-table tbody").innerHTML = labs.map((l) => {
    const live = !["STOPPED", "FAILED"].includes(l.state);
    return `<tr data-id="${esc(l.id)}"><td>${esc(l.name)}<div class="muted">${esc(l.id)}${l.sharedWith.length ? " · shared with " + esc(l.sharedWith.join(", ")) : ""}</div></td>
      <td>${esc(l.image)}</td><td class="state-${esc(l.state)}">${esc(l.state)}</td><td>${esc(l.reason)}</td>
      <td class="left" data-expires="${l.expiresAt || ""}">${live ? left(l.expiresAt) : ""}</td><td>
      ${l.base && l.state === "RUNNING" ? `<a class="small open" href="${esc(l.base)}" target="_blank" rel="noopener"><button class="small">Open</button></a>` : ""}
      <button class="small logs">Logs</button>
      ${live ? `<button class="small share">Share</button><button class="small renew">Renew</button>` : ""}
      <button class="small danger destroy">Destroy</button></td></tr>`;
  }).join("");
  for (const tr of document.querySelectorAll("#lab-table tbody tr")) {
    const id = tr.dataset.id;
    const on = (cls, f) => { const b = tr.querySelector(cls); if (b) b.addEventListener("click", f); };
    on(".logs", () => openLog(id));
    on(".share", async () => {
      const user = prompt("Share with which user?"); if (!user) return;
      try { await gql("mutation($id: String!, $u: String!) { shareDatalab(id: $id, user: $u) { id } }", { id, u: user }); loadLabs(); }
      catch (e) { alert(e.message); }
    });
    on(".renew", async () => {
      try { await gql("mutation($id: String!) { renewDatalab(id: $id) { id } }", { id }); loadLabs(); } catch (e) { alert(e.message); }
    });
    on(".destroy", async () => {
      if (!confirm("Destroy this datalab? What it wrote to your volumes stays.")) return;
      try { await gql("mutation($id: String!) { destroyDatalab(id: $id) }", { id }); if ($("#log-box").dataset.id === id) closeLog(); loadLabs(); }
      catch (e) { alert(e.message); }
    });
  }
}

// Live logs: a GraphQL subscription over WebSocket (graphql-transport-ws; the session cookie
// goes along, as this page is the server's own), which the server ends when the lab has ended.
let logSocket = null;
function openLog(id) {
  closeLogStream();
  $("#log-box").hidden = false; $("#log-box").dataset.id = id; $("#log-title").textContent = `Logs of ${id}`;
  const pre = $("#log"); pre.textContent = "";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`, "graphql-transport-ws");
  logSocket = ws;
  const send = (m) => ws.send(JSON.stringify(m));
  const say = (text) => { const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4; pre.textContent += text; if (atEnd) pre.scrollTop = pre.scrollHeight; };
  ws.onopen = () => send({ type: "connection_init", payload: {} });
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === "connection_ack") send({ id: "log", type: "subscribe", payload: { query: "subscription($id: String!) { datalabLogs(id: $id) }", variables: { id } } });
    else if (m.type === "next" && m.payload.errors) say(`\n[${m.payload.errors[0].message}]`);
    else if (m.type === "next") say(m.payload.data.datalabLogs);
    else if (m.type === "error") say(`\n[${m.payload[0].message}]`);
    else if (m.type === "ping") send({ type: "pong" });
  };
  ws.onclose = (event) => { if (event.code >= 4000) say(`\n[${event.reason}]`); };
}
function closeLogStream() { if (logSocket) { logSocket.close(); logSocket = null; } }
function closeLog() { closeLogStream(); $("#log-box").hidden = true; delete $("#log-box").dataset.id; }
$("#log-close").addEventListener("click", closeLog);

$("#launch-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const volumes = [...document.querySelectorAll("#launch-volumes input:checked")].map((i) => i.value);
  const input = { name: f.get("name"), image: f.get("image"), volumes,
    cpuMillis: Math.round(parseFloat(f.get("cpu")) * 1000), memoryMib: parseInt(f.get("memory"), 10),
    lifetimeSeconds: Math.round(parseFloat(f.get("hours")) * 3600), removeWhenFinished: !!f.get("remove") };
  $("#launch-error").textContent = "";
  let lab;
  try {
    lab = (await gql("mutation($i: CreateDatalabInput!) { createDatalab(input: $i) { datalab { id base } } }", { i: input })).createDatalab.datalab;
  } catch (err) { $("#launch-error").textContent = err.message; return; }
  loadLabs();
  // "select datalab as soon as its interface is available": open it once RUNNING.
  const openWhenReady = f.get("open") && lab.base;
  const opened = openWhenReady ? window.open("about:blank", "_blank") : null;
  const poll = setInterval(async () => {
    const { datalab } = await gql("query($id: String!) { datalab(id: $id) { state reason } }", { id: lab.id });
    if (datalab.state === "RUNNING" || datalab.state === "STOPPED" || datalab.state === "FAILED") {
      clearInterval(poll); loadLabs();
      if (datalab.state === "RUNNING" && opened) opened.location = lab.base;
      else if (opened) opened.close();
      if (datalab.state === "FAILED") $("#launch-error").textContent = `${lab.id} failed: ${datalab.reason}`;
    }
  }, 1000);
});

// The time left ticks down; the list refreshes while the tab is shown.
setInterval(() => {
  for (const td of document.querySelectorAll("td.left[data-expires]")) if (td.dataset.expires) td.textContent = left(parseInt(td.dataset.expires, 10));
}, 1000);
setInterval(() => { if (!$("#labs").hidden) loadLabs().catch(() => {}); }, 5000);

start();
