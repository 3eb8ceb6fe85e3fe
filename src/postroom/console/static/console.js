// Postroom console. No framework and no build step: plain DOM code, served as a file so the page's CSP can forbid
// inline script. Every value from the API is written with textContent (never innerHTML); mail HTML goes only into a
// sandboxed iframe (no allow-scripts, no allow-same-origin). The API key lives in sessionStorage (this tab only) and
// travels as a Bearer header: no cookie, so no request can be forged from another site, and never in a URL.
// What a page shows is decided by the key's scopes, and every call is checked again by the API's own scopes.
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

// Page → the scope it needs. A key without it gets neither the nav link nor the page (and the API would refuse).
const PAGES = {
  overview: "messages:read", activity: "messages:read", message: "messages:read",
  mailboxes: "mailbox:read", mailbox: "mailbox:read", mail: "mailbox:read",
  templates: "templates:read", template: "templates:read",
  suppressions: "suppressions:read", webhooks: "webhooks:manage", keys: "keys:manage", domains: "domains:read",
};
const SECTIONS = ["signin", "denied", ...Object.keys(PAGES)];

function key() { return sessionStorage.getItem(KEY); }
function can(scope) { return scopes.includes(scope); }

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: "Bearer " + key() };
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method: options.method || "GET",
    body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    headers,
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  if (response.status === 401) { signOut(); throw new Error("the API key was refused"); }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const error = new Error((body.error && body.error.message) || "HTTP " + response.status);
    error.field = body.error && body.error.field;
    throw error;
  }
  return response;
}
async function getJson(path) { return (await api(path)).json(); }

function show(id) {
  for (const section of SECTIONS) $(section).hidden = section !== id;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function button(text, onClick, className) {
  const node = el("button", text, className);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function cells(row, ...values) {
  for (const value of values) row.append(value instanceof Node ? wrap("td", value) : el("td", value));
  return row;
}
function wrap(tag, ...children) { const node = el(tag); node.append(...children); return node; }
function link(text, href) { const a = el("a", text); a.href = href; return a; }
function when(iso) { return iso ? String(iso).replace("T", " ").slice(0, 19) : ""; }

// Mail HTML in a sandboxed srcdoc frame: it inherits the console's CSP, and this meta narrows it further (no
// remote images until the viewer asks; inline style only, as mail is styled).
function frameHtml(frame, html, remoteImages) {
  const images = remoteImages ? "data: https:" : "data:";
  const policy = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; " +
    "style-src 'unsafe-inline'; img-src " + images + "\">";
  frame.srcdoc = html === null || html === undefined ? "" : policy + html;
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

function landing() {
  if (can("messages:read")) return "#/activity";
  const first = [...$("nav").querySelectorAll("a")].find((a) => !a.hidden);
  return first ? first.getAttribute("href") : "#/denied";
}

async function signIn(event) {
  event.preventDefault();
  const input = $("key");
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = "";
  try {
    await loadWho();
    const target = landing();
    if (location.hash === target) route();
    else location.hash = target; // the hashchange listener routes
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
}

async function loadWho() {
  const me = await getJson("/v1/me");
  scopes = me.scopes;
  $("who").textContent = me.tenant + " · " + me.scopes.join(", ");
  for (const a of $("nav").querySelectorAll("a")) a.hidden = !can(a.dataset.scope);
  $("nav").hidden = false;
  $("sign-out").hidden = false;
}

// --- Overview -------------------------------------------------------------------------------------------------------

const COUNTED = ["sent", "delivered", "bounced", "complained", "deferred"];

async function loadOverview() {
  $("overview-error").textContent = "";
  try {
    const stats = await getJson("/v1/stats");
    const body = $("o-counts");
    body.replaceChildren();
    for (const name of COUNTED) {
      body.append(cells(el("tr"), name, stats.last_24h[name] || 0, stats.last_7d[name] || 0));
    }
    const rates = $("o-rates");
    rates.replaceChildren();
    for (const [label, rate, limit] of [
      ["Bounce rate (7 d)", stats.rates.bounce, stats.rates.bounce_review],
      ["Complaint rate (7 d)", stats.rates.complaint, stats.rates.complaint_review],
    ]) {
      const over = rate !== null && rate >= limit;
      const text = rate === null ? "no deliveries yet" : (rate * 100).toFixed(2) + " %";
      rates.append(el("dt", label), el("dd", text + " (review at " + (limit * 100) + " %)", over ? "bad" : "good"));
    }
    $("o-queue").textContent = stats.queue.waiting === null ? "unknown" : stats.queue.waiting;
    $("o-dlq").textContent = stats.queue.dead_letters === null ? "unknown" : stats.queue.dead_letters;
    $("o-dlq").className = stats.queue.dead_letters ? "bad" : "";
    $("o-dashboard-row").hidden = !stats.dashboard_url;
    if (stats.dashboard_url) $("o-dashboard").href = stats.dashboard_url;
  } catch (error) {
    $("overview-error").textContent = error.message;
  }
}

// --- Activity and Message -------------------------------------------------------------------------------------------

function filterQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filters"))) if (value) params.set(name, value);
  return params;
}

async function loadActivity(more) {
  $("activity-error").textContent = "";
  const rows = $("rows");
  const generation = ++listGeneration;
  const params = filterQuery();
  if (more && nextCursor) params.set("cursor", nextCursor);
  try {
    const page = await getJson("/v1/messages?" + params);
    if (generation !== listGeneration) return;
    if (!more) rows.replaceChildren();
    for (const m of page.data) {
      const row = el("tr");
      row.append(el("td", when(m.created_at)));
      row.append(el("td", m.status, "status status-" + m.status));
      row.append(el("td", m.to.join(", ")));
      row.append(wrap("td", link(m.subject || "(no subject)", "#/messages/" + encodeURIComponent(m.id))));
      rows.append(row);
    }
    nextCursor = page.next;
    $("more").hidden = !nextCursor;
    if (!rows.children.length) rows.append(cells(el("tr"), "No messages match."));
  } catch (error) {
    if (generation === listGeneration) $("activity-error").textContent = error.message;
  }
}

function timeline(record, events) {
  const box = $("m-timeline");
  box.replaceChildren();
  for (const r of record.recipients) {
    const head = el("h3", r.address);
    if (r.status === "suppressed" && can("suppressions:write") && can("suppressions:read")) {
      head.append(" ", button("Remove from suppression list", () => unsuppress(r.address), "small"));
    }
    box.append(head);
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

async function loadMessage(id) {
  $("message-error").textContent = "";
  for (const name of ["m-subject", "m-status", "m-from", "m-created", "m-id", "m-text"]) $(name).textContent = "";
  $("m-timeline").replaceChildren();
  $("m-headers").replaceChildren();
  shownHtml = null;
  frameHtml($("m-html"), null, false);
  try {
    const record = await getJson("/v1/messages/" + encodeURIComponent(id));
    $("m-subject").textContent = record.subject;
    $("m-status").textContent = record.status;
    $("m-from").textContent = record.from_address;
    $("m-created").textContent = record.created_at;
    $("m-id").textContent = record.id;
    $("m-cancel").hidden = !(record.status === "scheduled" && can("messages:send"));
    $("m-resend").hidden = !can("messages:send");
    const events = await getJson("/v1/messages/" + encodeURIComponent(id) + "/events");
    timeline(record, events.data);
    if (record.status === "scheduled" || record.status === "cancelled") return; // not built yet: nothing to show
    const content = await getJson("/v1/messages/" + encodeURIComponent(id) + "/content");
    shownHtml = content.html;
    frameHtml($("m-html"), shownHtml, false);
    $("m-text").textContent = content.text || "";
    for (const [name, value] of content.headers) $("m-headers").append(cells(el("tr"), name, value));
  } catch (error) {
    $("message-error").textContent = error.message;
  }
}

function download(blob, name) {
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

async function downloadSource() {
  const id = $("m-id").textContent;
  try {
    download(await (await api("/v1/messages/" + encodeURIComponent(id) + "/source")).blob(), id + ".eml");
  } catch (error) {
    $("message-error").textContent = error.message;
  }
}

async function messageAction(work) {
  $("message-error").textContent = "";
  $("message-notice").textContent = "";
  try {
    await work($("m-id").textContent);
  } catch (error) {
    $("message-error").textContent = error.message;
  }
}

function cancelSend() {
  return messageAction(async (id) => {
    await api("/v1/messages/" + encodeURIComponent(id) + "/cancel", { method: "POST" });
    await loadMessage(id);
    $("message-notice").textContent = "The scheduled send was cancelled.";
  });
}

function resend() {
  return messageAction(async (id) => {
    const copy = await (await api("/v1/messages/" + encodeURIComponent(id) + "/resend", { method: "POST" })).json();
    const notice = $("message-notice");
    notice.replaceChildren("Re-sent as ", link(copy.id, "#/messages/" + copy.id), ".");
  });
}

function unsuppress(address) {
  return messageAction(async (id) => {
    const entries = await getJson("/v1/suppressions?address=" + encodeURIComponent(address));
    for (const entry of entries.data) await api("/v1/suppressions?" + suppressionQuery(entry), { method: "DELETE" });
    await loadMessage(id);
    $("message-notice").textContent = address + " was removed from the suppression list.";
  });
}

// --- Mailboxes ------------------------------------------------------------------------------------------------------

let mailboxList = [];
let mailboxCursor = null;
let shownMailbox = null;
let shownMail = null;

async function loadMailboxes() {
  $("mailboxes-error").textContent = "";
  try {
    mailboxList = (await getJson("/v1/mailboxes")).mailboxes;
    const rows = $("mb-rows");
    rows.replaceChildren();
    for (const box of mailboxList) {
      const row = cells(el("tr"), box.address, link(box.name, "#/mailboxes/" + encodeURIComponent(box.id)),
        box.unread, box.total);
      if (box.unread) row.className = "unread";
      rows.append(row);
    }
    if (!rows.children.length) rows.append(cells(el("tr"), "No mailboxes for this key."));
  } catch (error) {
    $("mailboxes-error").textContent = error.message;
  }
}

async function loadMailbox(id, more) {
  $("mailbox-error").textContent = "";
  shownMailbox = id;
  const rows = $("mbx-rows");
  const generation = ++listGeneration;
  try {
    const box = await getJson("/v1/mailboxes/" + encodeURIComponent(id));
    $("mbx-name").textContent = box.address + " · " + box.name + " (" + box.unread + " unread)";
    const params = new URLSearchParams({ limit: "50" });
    if (more && mailboxCursor) params.set("cursor", mailboxCursor);
    const page = await getJson("/v1/mailboxes/" + encodeURIComponent(id) + "/messages?" + params);
    if (generation !== listGeneration) return;
    if (!more) rows.replaceChildren();
    for (const m of page.messages) {
      const seen = m.keywords.includes("$seen");
      const flagged = m.keywords.includes("$flagged");
      const marks = (seen ? "" : "● ") + (flagged ? "⚑" : "") + (m.has_attachments ? " 📎" : "");
      const from = (m.from || []).map((a) => a.email || a.address || a).join(", ");
      const row = cells(el("tr"), marks, when(m.received_at), from,
        link(m.subject || "(no subject)", "#/mail/" + encodeURIComponent(m.id)));
      row.className = (seen ? "" : "unread ") + (flagged ? "flagged" : "");
      rows.append(row);
    }
    mailboxCursor = page.next_cursor;
    $("mbx-more").hidden = !mailboxCursor;
    if (!rows.children.length) rows.append(cells(el("tr"), "This mailbox is empty."));
  } catch (error) {
    if (generation === listGeneration) $("mailbox-error").textContent = error.message;
  }
}

function addresses(list) { return (list || []).map((a) => a.email || a.address || a).join(", "); }

async function loadMail(id) {
  $("mail-error").textContent = "";
  for (const name of ["mail-subject", "mail-from", "mail-to", "mail-received", "mail-state", "mail-text"]) {
    $(name).textContent = "";
  }
  $("mail-attachments").replaceChildren();
  frameHtml($("mail-html"), null, false);
  try {
    let mail = await getJson("/v1/mail/" + encodeURIComponent(id));
    // Reading marks it seen, through the same keyword update IMAP's FETCH of a body uses.
    if (!mail.keywords.includes("$seen") && can("mailbox:write")) {
      const updated = await (await api("/v1/mail/" + encodeURIComponent(id), {
        method: "PATCH", json: { keywords: { $seen: true } },
      })).json();
      mail = { ...mail, keywords: updated.keywords };
    }
    shownMail = mail;
    $("mail-back").href = "#/mailboxes/" + encodeURIComponent(mail.mailbox);
    $("mail-subject").textContent = mail.subject || "(no subject)";
    $("mail-from").textContent = addresses(mail.from);
    $("mail-to").textContent = addresses(mail.to);
    $("mail-received").textContent = when(mail.received_at);
    showMailState();
    frameHtml($("mail-html"), mail.html_sanitized, false);
    $("mail-text").textContent = mail.text || "";
    for (const a of mail.attachments) {
      const label = (a.filename || "part " + a.part) + " (" + (a.content_type || "") + ", " + (a.size || 0) + " bytes)";
      $("mail-attachments").append(wrap("li", button(label, () => downloadAttachment(a), "attachment")));
    }
    if (!mail.attachments.length) $("mail-attachments").append(el("li", "none"));
    const writable = can("mailbox:write");
    for (const name of ["mail-flag", "mail-move", "mail-delete"]) $(name).disabled = !writable;
    const move = $("mail-move");
    move.replaceChildren(el("option", "—"));
    if (!mailboxList.length) mailboxList = (await getJson("/v1/mailboxes")).mailboxes;
    for (const box of mailboxList.filter((b) => b.address === mail.address && b.id !== mail.mailbox)) {
      const option = el("option", box.name);
      option.value = box.id;
      move.append(option);
    }
  } catch (error) {
    $("mail-error").textContent = error.message;
  }
}

function showMailState() {
  const k = shownMail.keywords;
  $("mail-state").textContent = [k.includes("$seen") ? "seen" : "unread", k.includes("$flagged") ? "flagged" : ""]
    .filter(Boolean).join(", ");
  $("mail-flag").textContent = k.includes("$flagged") ? "Unflag" : "Flag";
}

async function mailAction(work) {
  $("mail-error").textContent = "";
  try { await work(shownMail); } catch (error) { $("mail-error").textContent = error.message; }
}

function toggleFlag() {
  return mailAction(async (mail) => {
    const on = !mail.keywords.includes("$flagged");
    const updated = await (await api("/v1/mail/" + encodeURIComponent(mail.id), {
      method: "PATCH", json: { keywords: { $flagged: on } },
    })).json();
    shownMail = { ...mail, keywords: updated.keywords };
    showMailState();
  });
}

function moveMail() {
  const target = $("mail-move").value;
  if (!target || target === "—") return undefined;
  return mailAction(async (mail) => {
    await api("/v1/mail/" + encodeURIComponent(mail.id), { method: "PATCH", json: { mailbox: target } });
    mailboxList = [];
    location.hash = "#/mailboxes/" + encodeURIComponent(mail.mailbox);
  });
}

function deleteMail() {
  return mailAction(async (mail) => {
    await api("/v1/mail/" + encodeURIComponent(mail.id), { method: "DELETE" });
    mailboxList = [];
    location.hash = "#/mailboxes/" + encodeURIComponent(mail.mailbox);
  });
}

function downloadAttachment(attachment) {
  return mailAction(async (mail) => {
    // The API hands out a short-lived presigned URL; fetching it here would cross the CSP's connect-src, so the
    // browser navigates to it (a download: the URL carries Content-Disposition: attachment).
    const path = "/v1/mail/" + encodeURIComponent(mail.id) + "/attachments/" + attachment.part + "?redirect=false";
    const answer = await getJson(path);
    const a = el("a");
    a.href = answer.url;
    a.rel = "noopener noreferrer";
    a.click();
  });
}

// --- Templates ------------------------------------------------------------------------------------------------------

let previewTimer = null;
let previewGeneration = 0;
let shownTemplate = null;

async function loadTemplates() {
  $("templates-error").textContent = "";
  $("t-new").hidden = !can("templates:write");
  try {
    const rows = $("t-rows");
    rows.replaceChildren();
    for (const t of (await getJson("/v1/templates")).templates) {
      rows.append(cells(el("tr"), link(t.name, "#/templates/" + encodeURIComponent(t.name)),
        t.builtin ? "built-in" : "own", t.description || "", when(t.updated_at)));
    }
  } catch (error) {
    $("templates-error").textContent = error.message;
  }
}

async function loadTemplate(name) {
  shownTemplate = name;
  $("t-name").textContent = name;
  for (const id of ["t-error", "t-html-error", "t-saved", "t-test-result", "t-preview-subject"]) $(id).textContent = "";
  $("t-save").hidden = !can("templates:write");
  $("t-test").disabled = !can("messages:send");
  try {
    let template;
    let variables = {};
    try {
      template = await getJson("/v1/templates/" + encodeURIComponent(name));
      variables = (await getJson("/v1/templates/" + encodeURIComponent(name) + "/sample")).variables;
    } catch (error) {
      if (error.field !== "name") throw error;
      // A new template: a small start the preview can render at once.
      template = { subject: "Hello {{ name }}", html: "<p>Hello {{ name }},</p>\n<p>…</p>", text: null };
      variables = { name: "Ann" };
    }
    $("t-subject").value = template.subject;
    $("t-html").value = template.html;
    $("t-text").value = template.text || "";
    $("t-vars").value = JSON.stringify(variables, null, 2);
    await preview();
  } catch (error) {
    $("t-error").textContent = error.message;
  }
}

function templateBody() {
  const body = { subject: $("t-subject").value, html: $("t-html").value };
  if ($("t-text").value.trim()) body.text = $("t-text").value;
  return body;
}

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 250);
}

function markLine(textarea, line) {
  // Select the failing line so it is in view and visible where the cursor is.
  const lines = textarea.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

async function preview() {
  const generation = ++previewGeneration;
  $("t-error").textContent = "";
  $("t-html-error").textContent = "";
  $("t-html").classList.remove("invalid");
  let variables;
  try {
    variables = JSON.parse($("t-vars").value || "{}");
  } catch (error) {
    $("t-error").textContent = "Sample variables: " + error.message;
    return null;
  }
  try {
    const rendered = await (await api("/v1/templates/preview", {
      method: "POST", json: { ...templateBody(), variables },
    })).json();
    if (generation !== previewGeneration) return null;
    $("t-preview-subject").textContent = rendered.subject;
    frameHtml($("t-preview"), rendered.html, false);
    return rendered;
  } catch (error) {
    if (generation !== previewGeneration) return null;
    const match = error.message.match(/^(subject|html|text): line (\d+): (.*)$/s);
    if (match && match[1] === "html") {
      $("t-html-error").textContent = "Line " + match[2] + ": " + match[3];
      $("t-html").classList.add("invalid");
      if (document.activeElement !== $("t-html")) markLine($("t-html"), Number(match[2]));
    } else {
      $("t-error").textContent = error.message;
    }
    return null;
  }
}

async function saveTemplate() {
  $("t-saved").textContent = "";
  try {
    await api("/v1/templates/" + encodeURIComponent(shownTemplate), { method: "PUT", json: templateBody() });
    $("t-saved").textContent = "Saved.";
  } catch (error) {
    $("t-error").textContent = error.message;
  }
}

async function sendTest() {
  $("t-test-result").textContent = "";
  const rendered = await preview();
  if (!rendered) return;
  try {
    const sent = await (await api("/v1/messages", {
      method: "POST",
      json: {
        from: $("t-test-from").value, to: [$("t-test-to").value], subject: "[test] " + rendered.subject,
        html: rendered.html, text: rendered.text, tags: ["template-test"],
      },
    })).json();
    $("t-test-result").replaceChildren("Sent: ", link(sent.id, "#/messages/" + sent.id));
  } catch (error) {
    $("t-test-result").textContent = error.message;
  }
}

// --- Suppressions ---------------------------------------------------------------------------------------------------

function suppressionQuery(entry) {
  const params = new URLSearchParams({ address: entry.address });
  if (entry.domain) params.set("domain", entry.domain);
  if (entry.topic) params.set("topic", entry.topic);
  return params;
}

async function loadSuppressions() {
  $("suppressions-error").textContent = "";
  $("s-add").hidden = !can("suppressions:write");
  try {
    const rows = $("s-rows");
    rows.replaceChildren();
    for (const entry of (await getJson("/v1/suppressions?limit=200")).data) {
      const scope = entry.domain ? entry.domain + (entry.topic ? " · " + entry.topic : "") : "all domains";
      const remove = can("suppressions:write")
        ? button("Remove", async () => {
          try {
            await api("/v1/suppressions?" + suppressionQuery(entry), { method: "DELETE" });
            loadSuppressions();
          } catch (error) { $("suppressions-error").textContent = error.message; }
        }) : "";
      rows.append(cells(el("tr"), entry.address, scope, entry.reason + (entry.details ? ": " + entry.details : ""),
        when(entry.created_at), remove));
    }
    if (!rows.children.length) rows.append(cells(el("tr"), "No address is suppressed."));
  } catch (error) {
    $("suppressions-error").textContent = error.message;
  }
}

async function addSuppression(event) {
  event.preventDefault();
  const form = new FormData($("s-add"));
  const body = { address: form.get("address") };
  if (form.get("details")) body.details = form.get("details");
  try {
    await api("/v1/suppressions", { method: "POST", json: body });
    $("s-add").reset();
    loadSuppressions();
  } catch (error) {
    $("suppressions-error").textContent = error.message;
  }
}

// --- Webhooks -------------------------------------------------------------------------------------------------------

async function loadWebhooks() {
  $("webhooks-error").textContent = "";
  const list = $("w-list");
  list.replaceChildren();
  try {
    const subscriptions = (await getJson("/v1/webhooks")).data;
    if (!subscriptions.length) list.append(el("p", "No webhook subscriptions."));
    for (const s of subscriptions) {
      const box = el("article", null, "webhook");
      box.append(el("h2", s.url));
      const state = s.enabled ? "enabled" : "disabled" + (s.disabled_reason ? ": " + s.disabled_reason : "");
      const facts = wrap("p", el("span", state, s.enabled ? "good" : "bad"),
        " · events: " + s.event_types.join(", ") + " · failures in a row: " + s.consecutive_failures);
      if (!s.enabled) {
        facts.append(" ", button("Re-enable", async () => {
          try {
            await api("/v1/webhooks/" + s.id, { method: "PATCH", json: { enabled: true } });
            loadWebhooks();
          } catch (error) { $("webhooks-error").textContent = error.message; }
        }));
      }
      box.append(facts);
      const table = el("table", null, "list");
      table.append(wrap("thead", cells(el("tr"), "When", "Event", "Outcome", "Status", "Answer", "")));
      const body = el("tbody");
      for (const a of (await getJson("/v1/webhooks/" + s.id + "/attempts?limit=20")).data) {
        const replay = button("Replay", async () => {
          try {
            await api("/v1/webhooks/" + s.id + "/replay", { method: "POST", json: { event_id: a.event_id } });
            replay.textContent = "Queued";
            replay.disabled = true;
          } catch (error) { $("webhooks-error").textContent = error.message; }
        });
        body.append(cells(el("tr"), when(a.at), a.event_type, a.outcome, a.status_code || a.error || "",
          el("code", a.response || ""), replay));
      }
      if (!body.children.length) body.append(cells(el("tr"), "No attempts yet."));
      table.append(body);
      box.append(table);
      list.append(box);
    }
  } catch (error) {
    $("webhooks-error").textContent = error.message;
  }
}

// --- API keys -------------------------------------------------------------------------------------------------------

async function loadKeys() {
  $("keys-error").textContent = "";
  const fieldset = $("k-scopes");
  if (fieldset.querySelectorAll("input").length === 0) {
    for (const scope of scopes) { // a key can grant only scopes it holds
      const input = el("input");
      input.type = "checkbox";
      input.name = "scope";
      input.value = scope;
      fieldset.append(wrap("label", input, " " + scope));
    }
  }
  try {
    const rows = $("k-rows");
    rows.replaceChildren();
    for (const k of (await getJson("/v1/keys")).data) {
      const disable = k.state === "active" ? button("Disable", async () => {
        try {
          await api("/v1/keys/" + k.id + "/disable", { method: "POST" });
          loadKeys();
        } catch (error) { $("keys-error").textContent = error.message; }
      }) : "";
      rows.append(cells(el("tr"), k.name, k.id, k.scopes.join(", "), k.state, disable));
    }
  } catch (error) {
    $("keys-error").textContent = error.message;
  }
}

function hideSecret() {
  $("k-secret").textContent = "";
  $("k-secret-box").hidden = true;
}

async function createKey(event) {
  event.preventDefault();
  const form = new FormData($("k-new"));
  $("k-secret-box").hidden = true;
  try {
    const created = await (await api("/v1/keys", {
      method: "POST", json: { name: form.get("name"), scopes: form.getAll("scope") },
    })).json();
    $("k-secret").textContent = created.key; // shown once: it is not kept anywhere else in the page
    $("k-secret-box").hidden = false;
    $("k-new").reset();
    loadKeys();
  } catch (error) {
    $("keys-error").textContent = error.message;
  }
}

// --- Domains --------------------------------------------------------------------------------------------------------

async function loadDomains() {
  $("domains-error").textContent = "";
  const list = $("d-list");
  list.replaceChildren();
  try {
    for (const d of (await getJson("/v1/domains")).data) {
      const box = el("article", null, "domain");
      const result = el("div");
      box.append(wrap("h2", d.name + " ", el("span", d.delivery, "hint")),
        button("Check DNS", () => doctor(d.name, result)), result);
      list.append(box);
    }
  } catch (error) {
    $("domains-error").textContent = error.message;
  }
}

async function doctor(name, target) {
  target.replaceChildren(el("p", "Checking…", "hint"));
  try {
    const report = await getJson("/v1/domains/" + encodeURIComponent(name) + "/doctor");
    target.replaceChildren(el("p", report.ok ? "No check failed." : "Some checks failed.", report.ok ? "good" : "bad"));
    const table = el("table", null, "list doctor");
    table.append(wrap("thead", cells(el("tr"), "Check", "Status", "What it found", "Publish")));
    const body = el("tbody");
    for (const c of report.checks) {
      const fixes = el("div");
      for (const f of c.fix) fixes.append(el("code", f.name + ". " + f.type + " " + f.value, "record"));
      body.append(cells(el("tr"), c.name, el("span", c.status, "check-" + c.status), c.summary, fixes));
    }
    table.append(body);
    target.append(table);
  } catch (error) {
    target.replaceChildren(el("p", error.message, "error"));
  }
}

// --- Routing --------------------------------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/overview$/, "overview", loadOverview],
  [/^#\/messages\/(msg_[0-9a-z]{26})$/, "message", loadMessage],
  [/^#\/mailboxes$/, "mailboxes", loadMailboxes],
  [/^#\/mailboxes\/(.+)$/, "mailbox", (id) => loadMailbox(decodeURIComponent(id), false)],
  [/^#\/mail\/(eml_[0-9a-z]{26})$/, "mail", loadMail],
  [/^#\/templates$/, "templates", loadTemplates],
  [/^#\/templates\/([a-z0-9_-]+)$/, "template", loadTemplate],
  [/^#\/suppressions$/, "suppressions", loadSuppressions],
  [/^#\/webhooks$/, "webhooks", loadWebhooks],
  [/^#\/keys$/, "keys", () => { hideSecret(); loadKeys(); }],
  [/^#\/domains$/, "domains", loadDomains],
  [/^#\/activity$/, "activity", () => loadActivity(false)],
];

function route() {
  if (!key()) { show("signin"); return; }
  let page = "activity";
  let load = () => loadActivity(false);
  let argument;
  for (const [pattern, name, loader] of ROUTES) {
    const match = location.hash.match(pattern);
    if (match) { page = name; load = loader; argument = match[1]; break; }
  }
  if (!can(PAGES[page])) {
    // The page is not fetched at all: the key would be refused, and the page would only show an error.
    $("denied-text").textContent = "This API key lacks the '" + PAGES[page] + "' scope this page needs.";
    show("denied");
    return;
  }
  show(page);
  load(argument);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadActivity(false); });
  $("more").addEventListener("click", () => loadActivity(true));
  $("m-source").addEventListener("click", downloadSource);
  $("m-cancel").addEventListener("click", cancelSend);
  $("m-resend").addEventListener("click", resend);
  $("m-images").addEventListener("click", () => frameHtml($("m-html"), shownHtml, true));
  $("mbx-more").addEventListener("click", () => loadMailbox(shownMailbox, true));
  $("mail-flag").addEventListener("click", toggleFlag);
  $("mail-move").addEventListener("change", moveMail);
  $("mail-delete").addEventListener("click", deleteMail);
  $("t-new").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/templates/" + new FormData($("t-new")).get("name");
  });
  for (const id of ["t-subject", "t-html", "t-text", "t-vars"]) $(id).addEventListener("input", schedulePreview);
  $("t-save").addEventListener("click", saveTemplate);
  $("t-test").addEventListener("click", sendTest);
  $("s-add").addEventListener("submit", addSuppression);
  $("k-new").addEventListener("submit", createKey);
  window.addEventListener("hashchange", route);
  if (key()) {
    try { await loadWho(); } catch (error) { signOut(); return; }
  }
  route();
});
