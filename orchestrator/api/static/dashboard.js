// The dashboard's live parts, in plain JavaScript: the outcome feed (Server-Sent Events),
// the bulk jobs' bars (one segment per result), the abort buttons and the fleet panel. Requests carry the session
// cookie (same origin); nothing here holds a token.
"use strict";

const POLL_MS = 1000;
const FEED_ROWS = 50;

function cell(row, text, cls, href) {
  const td = row.insertCell();
  if (href) {
    const link = document.createElement("a");
    link.href = href;
    link.textContent = text;
    td.append(link);
  } else {
    td.textContent = text;
  }
  if (cls) td.className = cls;
}

function startFeed() {
  const table = document.querySelector("#feed tbody");
  if (!table) return;
  const state = document.getElementById("feed-state");
  const source = new EventSource("/v1/outcomes/stream");
  source.onopen = () => { state.textContent = "live"; };
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.addEventListener("outcome", (event) => {
    const o = JSON.parse(event.data);
    const row = table.insertRow(0);
    cell(row, new Date(o.finished_at).toLocaleTimeString());
    cell(row, o.result, "result " + o.result);
    cell(row, o.provider);
    cell(row, [o.thread_id, o.run_id].filter(Boolean).join(" "));
    cell(row, o.job_id, "", "/lookup?job_id=" + encodeURIComponent(o.job_id));
    cell(row, o.bulk_id || "");
    while (table.rows.length > FEED_ROWS) table.deleteRow(-1);
  });
}

function showBulk(row, record) {
  const percent = record.queued ? Math.floor((100 * record.done) / record.queued) : 0;
  const finished = record.status !== "enqueueing" && record.done >= record.queued;
  const bar = row.querySelector(".bar");
  bar.replaceChildren(...Object.entries(record.results).map(([result, n]) => {
    const segment = document.createElement("div");
    segment.className = "seg " + result;
    segment.style.width = (record.queued ? (100 * n) / record.queued : 0) + "%";
    return segment;
  }));
  row.querySelector(".percent").textContent = percent + " %";
  row.querySelector(".counts").textContent = record.done + " / " + record.queued;
  row.querySelector(".status").textContent =
    finished && record.status === "running" ? "finished" : record.status;
  row.querySelector(".results").textContent = Object.entries(record.results)
    .map(([result, n]) => result + " " + n).join(" ");
  row.dataset.finished = finished ? "true" : "false";
  if (finished || record.status === "aborted") {
    const button = row.querySelector("button.abort");
    if (button) button.remove();
  }
  return finished;
}

function followBulk(row) {
  const id = row.dataset.bulkId;
  const tick = async () => {
    const reply = await fetch("/v1/bulk/" + encodeURIComponent(id), { credentials: "same-origin" });
    if (reply.ok && showBulk(row, await reply.json())) return;
    setTimeout(tick, POLL_MS);
  };
  if (row.dataset.finished !== "true") tick();
}

async function abortBulk(button) {
  const id = button.dataset.abort;
  if (!confirm("Abort bulk job " + id + "? Nothing more is sent; its jobs not done end skipped.")) return;
  button.disabled = true;
  const reply = await fetch("/v1/bulk/" + encodeURIComponent(id) + "/abort", {
    method: "POST", credentials: "same-origin",
  });
  if (!reply.ok) {
    button.disabled = false;
    alert("abort failed: " + reply.status);
    return;
  }
  const row = button.closest("tr");
  showBulk(row, await reply.json());
}

function followFleet() {
  const panel = document.getElementById("fleet");
  if (!panel) return;
  setInterval(async () => {
    const reply = await fetch("/v1/fleet", { credentials: "same-origin" });
    if (!reply.ok) return;
    const fleet = await reply.json();
    for (const dd of panel.querySelectorAll("[data-fleet]")) {
      const value = fleet[dd.dataset.fleet];
      dd.textContent = value === null ? "-" :
        dd.dataset.fleet === "oldest_queued_age_s" ? value.toFixed(1) + " s" : String(value);
    }
  }, 5 * POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  startFeed();
  followFleet();
  document.querySelectorAll("tr[data-bulk-id]").forEach(followBulk);
  document.querySelectorAll("button.abort").forEach((button) => {
    button.addEventListener("click", () => abortBulk(button));
  });
});
