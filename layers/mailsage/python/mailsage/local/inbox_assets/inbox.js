// The inbox page: new mail without a reload (a small JSON poll), search as you type, a confirmed
// delete, and the message view's tabs. Rows are built with textContent: a subject is hostile input.
"use strict";

const POLL_MS = 1500;

function cell(className, text, title) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  if (title) td.title = title;
  return td;
}

function rowOf(m) {
  const tr = document.createElement("tr");
  tr.className = "message";
  tr.dataset.id = m.id;
  const received = cell("received", "");
  const time = document.createElement("time");
  time.dateTime = m.received_iso;
  time.textContent = m.received;
  received.appendChild(time);
  const subject = cell("subject", "");
  const link = document.createElement("a");
  link.href = "/inbox/messages/" + encodeURIComponent(m.id);
  link.textContent = m.subject || "(no subject)";
  subject.appendChild(link);
  const status = cell("status", "");
  const badge = document.createElement("span");
  badge.className = "status-" + (m.status || "unknown");
  badge.textContent = m.status;
  status.appendChild(badge);
  tr.append(received, cell("from", m.from), cell("to", m.to), subject,
            cell("job", m.job_id, m.job_id), cell("campaign", m.campaign_id), status);
  return tr;
}

function setupList(section) {
  const body = section.querySelector("#messages tbody");
  const count = section.querySelector("#count");
  const empty = section.querySelector("#empty");
  const input = section.querySelector("#q");
  let shown = "";
  let timer = null;

  async function refresh() {
    const query = input.value.trim();
    try {
      const reply = await fetch("/inbox/messages.json?q=" + encodeURIComponent(query),
                                { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!reply.ok) return;
      const data = await reply.json();
      if (query !== input.value.trim()) return;  // typed on meanwhile: the next refresh shows it
      const signature = JSON.stringify([data.total, data.messages.map((m) => [m.id, m.status, m.campaign_id])]);
      if (signature === shown) return;
      shown = signature;
      body.replaceChildren(...data.messages.map(rowOf));
      count.textContent = data.total + (data.total === 1 ? " message" : " messages");
      empty.hidden = data.messages.length > 0;
    } catch (err) {
      // the server is restarting or stopped: try again at the next tick
    }
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(async () => { await refresh(); schedule(POLL_MS); }, delay);
  }

  section.querySelector("#search").addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", input.value.trim() ? "?q=" + encodeURIComponent(input.value.trim()) : "/inbox");
    schedule(0);
  });
  input.addEventListener("input", () => schedule(200));
  section.querySelector("#delete-all").addEventListener("submit", (event) => {
    if (!window.confirm("Delete every message in the local inbox?")) event.preventDefault();
  });
  schedule(POLL_MS);
}

function setupTabs(article) {
  const tabs = article.querySelectorAll("[role=tab]");
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      for (const other of tabs) {
        other.setAttribute("aria-selected", String(other === tab));
        article.querySelector("#tab-" + other.dataset.tab).hidden = other !== tab;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("inbox");
  if (list) setupList(list);
  const message = document.getElementById("message");
  if (message) setupTabs(message);
});
