// Postroom console. No framework and no build step: plain DOM code, served as a file so the page's CSP can forbid
// inline script. Every value from the API is written with textContent (never innerHTML); the mail's own HTML goes
// only into a sandboxed iframe (no allow-scripts, no allow-same-origin). The API key lives in sessionStorage (this tab
// only) and travels as a Bearer header: no cookie, so no request can be forged from another site, and never in a URL.
"use strict";

const KEY = "postroom.key";
// The API sits beside the console: /console → "", /api/console (a stage prefix) → "/api".
const API = location.pathname.replace(/\/console\/?$/, "");
const $ = (id) => document.getElementById(id);
let scopes = [];
let nextCursor = null;
let shownHtml = null;
// Each list load takes a number; an answer that arrives after a newer load started is dropped, so two loads in
// flight (a filter submitted twice, a hash change during sign-in) cannot interleave their rows.
let listGeneration = 0;

function key() { return sessionStorage.getItem(KEY); }

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options,
    headers: { ...(options.headers || {}), Authorization: "Bearer " + key() },
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  if (response.status === 401) { signOut(); throw new Error("the API key was refused"); }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error((body.error && body.error.message) || "HTTP " + response.status);
  }
  return response;
}

function show(id) {
  for (const section of ["signin", "activity", "message"]) $(section).hidden = section !== id;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function signOut() {
  sessionStorage.removeItem(KEY);
  scopes = [];
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  location.hash = "";
  show("signin");
}

async function signIn(event) {
  event.preventDefault();
  const input = $("key");
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = "";
  try {
    await loadWho();
    if (location.hash === "#/activity") route();
    else location.hash = "#/activity"; // the hashchange listener routes
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
}

async function loadWho() {
  const me = await (await api("/v1/me")).json();
  scopes = me.scopes;
  $("who").textContent = me.tenant + " · " + me.scopes.join(", ");
  $("nav").hidden = false;
  $("sign-out").hidden = false;
}

function filterQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filters"))) if (value) params.set(name, value);
  return params;
}

async function loadActivity(more) {
  show("activity");
  $("activity-error").textContent = "";
  const rows = $("rows");
  const generation = ++listGeneration;
  const params = filterQuery();
  if (more && nextCursor) params.set("cursor", nextCursor);
  try {
    const page = await (await api("/v1/messages?" + params)).json();
    if (generation !== listGeneration) return;
    if (!more) rows.replaceChildren();
    for (const m of page.data) {
      const row = el("tr");
      row.append(el("td", m.created_at.replace("T", " ").slice(0, 19)));
      row.append(el("td", m.status, "status status-" + m.status));
      row.append(el("td", m.to.join(", ")));
      const cell = el("td");
      const link = el("a", m.subject || "(no subject)");
      link.href = "#/messages/" + encodeURIComponent(m.id);
      cell.append(link);
      row.append(cell);
      rows.append(row);
    }
    nextCursor = page.next;
    $("more").hidden = !nextCursor;
    if (!rows.children.length) rows.append(el("tr")).append(el("td", "No messages match."));
  } catch (error) {
    if (generation === listGeneration) $("activity-error").textContent = error.message;
  }
}

function timeline(record, events) {
  const box = $("m-timeline");
  box.replaceChildren();
  for (const r of record.recipients) {
    box.append(el("h3", r.address));
    const steps = [[record.created_at, "queued"]];
    for (const e of events.filter((e) => e.recipient === r.address)) {
      const reply = e.details && (e.details.reply || e.details.diagnostic);
      steps.push([e.occurred_at, e.type + (reply ? " — " + reply : "")]);
    }
    if (!events.some((e) => e.recipient === r.address && e.type === r.status)) {
      const reply = [r.smtp_code, r.enhanced_status, r.reply].filter(Boolean).join(" ");
      steps.push([r.final_at || r.last_attempt_at || "", r.status + (reply ? " — " + reply : "")]);
    }
    for (const [at, text] of steps) {
      const step = el("p", null, "step");
      step.append(el("time", at), el("span", text));
      box.append(step);
    }
  }
}

function renderHtml(remoteImages) {
  // A srcdoc frame inherits the console's CSP; this meta narrows it further: no remote images until asked.
  const images = remoteImages ? "data: https:" : "data:";
  const policy = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src " + images + "\">";
  $("m-html").srcdoc = shownHtml === null ? "" : policy + shownHtml;
}

async function loadMessage(id) {
  show("message");
  $("message-error").textContent = "";
  for (const name of ["m-subject", "m-status", "m-from", "m-created", "m-id", "m-text"]) $(name).textContent = "";
  $("m-timeline").replaceChildren();
  $("m-headers").replaceChildren();
  shownHtml = null;
  renderHtml(false);
  try {
    const record = await (await api("/v1/messages/" + encodeURIComponent(id))).json();
    $("m-subject").textContent = record.subject;
    $("m-status").textContent = record.status;
    $("m-from").textContent = record.from_address;
    $("m-created").textContent = record.created_at;
    $("m-id").textContent = record.id;
    $("m-cancel").hidden = !(record.status === "scheduled" && scopes.includes("messages:send"));
    const events = await (await api("/v1/messages/" + encodeURIComponent(id) + "/events")).json();
    timeline(record, events.data);
    const content = await (await api("/v1/messages/" + encodeURIComponent(id) + "/content")).json();
    shownHtml = content.html;
    renderHtml(false);
    $("m-text").textContent = content.text || "";
    for (const [name, value] of content.headers) {
      const row = el("tr");
      row.append(el("td", name), el("td", value));
      $("m-headers").append(row);
    }
  } catch (error) {
    $("message-error").textContent = error.message;
  }
}

async function downloadSource() {
  const id = $("m-id").textContent;
  try {
    const blob = await (await api("/v1/messages/" + encodeURIComponent(id) + "/source")).blob();
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = id + ".eml";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (error) {
    $("message-error").textContent = error.message;
  }
}

async function cancelSend() {
  const id = $("m-id").textContent;
  try {
    await api("/v1/messages/" + encodeURIComponent(id) + "/cancel", { method: "POST" });
    loadMessage(id);
  } catch (error) {
    $("message-error").textContent = error.message;
  }
}

function route() {
  if (!key()) { show("signin"); return; }
  const match = location.hash.match(/^#\/messages\/(msg_[0-9a-z]{26})$/);
  if (match) loadMessage(match[1]);
  else loadActivity(false);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadActivity(false); });
  $("more").addEventListener("click", () => loadActivity(true));
  $("m-source").addEventListener("click", downloadSource);
  $("m-cancel").addEventListener("click", cancelSend);
  $("m-images").addEventListener("click", () => renderHtml(true));
  window.addEventListener("hashchange", route);
  if (key()) {
    try { await loadWho(); } catch (error) { signOut(); return; }
  }
  route();
});
