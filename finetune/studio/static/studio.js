// The studio's pages: marks on de-identified records, live run progress, and side-by-side answers.
"use strict";

async function postJSON(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body)});
  const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function say(id, text, isError) {
  const el = document.getElementById(id);
  if (el) { el.textContent = text; el.classList.toggle("error", !!isError); }
}

// ---- Data: choose a source, mark misses and wrong redactions, save the review ----
function textOffset(root, node, offset) {
  // Offset of (node, offset) in root's text: the text nodes before it, in document order, plus offset.
  if (node.nodeType !== Node.TEXT_NODE) {
    const walker0 = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let total0 = 0, child = node.childNodes[offset] || null;
    while (walker0.nextNode()) {
      if (child && (child === walker0.currentNode || child.contains(walker0.currentNode))) return total0;
      total0 += walker0.currentNode.length;
    }
    return total0;
  }
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let total = 0;
  while (walker.nextNode()) {
    if (walker.currentNode === node) return total + offset;
    total += walker.currentNode.length;
  }
  return -1;
}

function setupData() {
  const select = document.getElementById("source-select");
  if (!select) return;
  select.addEventListener("change", () => document.getElementById("source-form").submit());
  document.getElementById("path-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const path = document.getElementById("path-input").value.trim();
    if (path) location.href = "/data?source=" + encodeURIComponent("file:" + path);
  });
  document.getElementById("upload-input").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    say("data-message", `uploading ${file.name}…`);
    const response = await fetch("/api/upload?name=" + encodeURIComponent(file.name),
                                 {method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: file});
    const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
    if (!response.ok) { say("data-message", data.error, true); return; }
    location.href = "/data?source=" + encodeURIComponent(data.source);
  });
  for (const section of document.querySelectorAll("section.record")) setupRecord(section);
}

function setupRecord(section) {
  const note = section.querySelector("pre.note");
  const missed = [];
  const status = section.querySelector(".review-status");
  note.addEventListener("click", (event) => {
    const mark = event.target.closest("mark.pii");
    if (!mark || mark.classList.contains("missed")) return;
    mark.classList.toggle("wrong");
    status.textContent = mark.classList.contains("wrong") ? `marked wrong: ${mark.dataset.kind}` : "unmarked";
  });
  section.querySelector(".mark-missed").addEventListener("click", () => {
    const selection = window.getSelection();
    if (!selection.rangeCount || selection.isCollapsed) { status.textContent = "select the missed text first"; return; }
    const range = selection.getRangeAt(0);
    if (!note.contains(range.startContainer) || !note.contains(range.endContainer)) {
      status.textContent = "select text inside this record's source text"; return;
    }
    let start = textOffset(note, range.startContainer, range.startOffset);
    let end = textOffset(note, range.endContainer, range.endOffset);
    const text = note.textContent;
    while (start < end && /\s/.test(text[start])) start++;
    while (end > start && /\s/.test(text[end - 1])) end--;
    if (start < 0 || end <= start) { status.textContent = "nothing selected"; return; }
    const kind = section.querySelector(".mark-kind").value;
    missed.push([start, end, kind]);
    try {
      const mark = document.createElement("mark");
      mark.className = `pii missed k-${kind}`;
      mark.dataset.kind = kind;
      mark.title = `missed ${kind}`;
      range.surroundContents(mark);
    } catch (error) { /* a selection across highlights: kept in the list, shown on save */ }
    selection.removeAllRanges();
    status.textContent = `${missed.length} missed identifier(s) marked; save the review to keep them`;
  });
  section.querySelector(".save-review").addEventListener("click", async () => {
    const wrong = [...note.querySelectorAll("mark.pii.wrong")].map(
      (m) => [Number(m.dataset.start), Number(m.dataset.end), m.dataset.kind]);
    try {
      const data = await postJSON("/api/review", {...window.STUDIO_SOURCE, index: Number(section.dataset.index),
                                                  missed, wrong});
      status.textContent = `saved: ${data.spans.length} labelled span(s) in ${data.saved}`;
      section.classList.add("saved");
    } catch (error) { status.textContent = error.message; status.classList.add("error"); }
  });
}

// ---- Run: start, stop, follow ----
let followed = null, timer = null;

function drawChart(points) {
  const canvas = document.getElementById("loss-chart");
  const ctx = canvas.getContext("2d");
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  const W = canvas.width, H = canvas.height, pad = 34;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = ctx.fillStyle = dark ? "#9aa3ad" : "#626a73";
  ctx.font = "11px sans-serif";
  ctx.strokeRect(pad, 8, W - pad - 8, H - pad);
  const series = [["loss", dark ? "#6cb4ff" : "#0b6bcb"], ["eval_loss", dark ? "#ffb86b" : "#c2571a"]];
  const all = points.filter((p) => p.loss !== undefined || p.eval_loss !== undefined);
  if (!all.length) { ctx.fillText("no loss logged yet", pad + 8, H / 2); return; }
  const steps = all.map((p) => p.step), values = all.flatMap((p) => [p.loss, p.eval_loss].filter((v) => v !== undefined));
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1), y0 = Math.min(...values), y1 = Math.max(...values, y0 + 1e-6);
  const X = (s) => pad + (W - pad - 8) * (s - x0) / (x1 - x0), Y = (v) => 8 + (H - pad) * (1 - (v - y0) / (y1 - y0));
  ctx.fillText(y1.toFixed(3), 2, 16); ctx.fillText(y0.toFixed(3), 2, H - pad + 4);
  ctx.fillText(`step ${x0}`, pad, H - 10); ctx.fillText(`${x1}`, W - 30, H - 10);
  for (const [key, colour] of series) {
    const pts = all.filter((p) => p[key] !== undefined);
    if (!pts.length) continue;
    ctx.strokeStyle = ctx.fillStyle = colour; ctx.lineWidth = 2; ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(X(p.step), Y(p[key])) : ctx.moveTo(X(p.step), Y(p[key]))));
    ctx.stroke();
    pts.forEach((p) => { ctx.beginPath(); ctx.arc(X(p.step), Y(p[key]), 2.5, 0, 7); ctx.fill(); });
    ctx.fillText(key, W - 70, key === "loss" ? 22 : 36);
  }
}

function showRun(run) {
  document.getElementById("run-detail").hidden = false;
  document.getElementById("detail-id").textContent = `${run.id} · ${run.verb}`;
  const status = document.getElementById("detail-status");
  status.textContent = run.status + (run.returncode !== null && run.returncode !== undefined ? ` (exit ${run.returncode})` : "");
  status.className = `status s-${run.status}`;
  document.getElementById("run-stop").hidden = !(run.status === "running");
  const latest = (run.progress || {}).latest || {};
  document.getElementById("fig-step").textContent = latest.step !== undefined ? `${latest.step}/${latest.max_steps || "?"}` : "–";
  document.getElementById("fig-loss").textContent = latest.loss !== undefined ? latest.loss.toFixed(4) : "–";
  document.getElementById("fig-tps").textContent = latest.tokens_per_second !== undefined ? Math.round(latest.tokens_per_second).toLocaleString() : "–";
  document.getElementById("fig-mem").textContent = latest.peak_memory_gib !== undefined ? `${latest.peak_memory_gib.toFixed(2)} GiB` : "–";
  drawChart((run.progress || {}).points || []);
  const log = document.getElementById("run-log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = (run.log || []).join("\n");
  if (atEnd) log.scrollTop = log.scrollHeight;
  document.getElementById("report-link").hidden = !(run.report && run.status === "finished");
  const row = document.querySelector(`tr[data-run="${run.id}"] .status`);
  if (row) { row.textContent = run.status; row.className = `status s-${run.status}`; }
  document.querySelectorAll("tr[data-run]").forEach((tr) => tr.classList.toggle("selected", tr.dataset.run === run.id));
}

async function follow(id) {
  followed = id;
  clearTimeout(timer);
  const response = await fetch(`/api/runs/${encodeURIComponent(id)}`);
  if (!response.ok || followed !== id) return;
  const run = await response.json();
  showRun(run);
  if (run.status === "running" || run.status === "stopping") timer = setTimeout(() => follow(id), 1000);
}

function addRunRow(run) {
  const tbody = document.querySelector("#runs tbody");
  const tr = document.createElement("tr");
  tr.dataset.run = run.id;
  for (const [text, cls] of [[run.id, ""], [run.verb, ""], [run.overrides.join(" "), ""], [run.status, `status s-${run.status}`]]) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text === run.id) { const a = document.createElement("a"); a.href = `#${run.id}`; a.className = "run-link"; a.textContent = text; td.append(a); }
    else td.textContent = text;
    tr.append(td);
  }
  tbody.prepend(tr);
}

function setupRun() {
  const form = document.getElementById("run-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const overrides = document.getElementById("run-overrides").value.split(/\s+/).filter(Boolean);
    try {
      const run = await postJSON("/api/runs", {verb: document.getElementById("run-verb").value, overrides,
                                               resume: document.getElementById("run-resume").checked});
      say("run-message", `started ${run.id}`);
      addRunRow(run);
      location.hash = run.id;
      follow(run.id);
    } catch (error) { say("run-message", error.message, true); }
  });
  document.getElementById("runs").addEventListener("click", (event) => {
    const link = event.target.closest("a.run-link");
    if (link) { event.preventDefault(); location.hash = link.textContent; follow(link.textContent); }
  });
  document.getElementById("run-stop").addEventListener("click", async () => {
    try { await postJSON(`/api/runs/${encodeURIComponent(followed)}/stop`, {}); say("run-message", `stopping ${followed}`); follow(followed); }
    catch (error) { say("run-message", error.message, true); }
  });
  const first = location.hash.slice(1) || (document.querySelector("tr[data-run]") || {dataset: {}}).dataset.run;
  if (first) follow(first);
}

// ---- Compare ----
function setupCompare() {
  const form = document.getElementById("compare-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say("compare-message", "asking base and tuned… (the first question starts the server)");
    for (const role of ["base", "tuned"]) document.getElementById(`answer-${role}`).textContent = "";
    try {
      const data = await postJSON("/api/compare", {prompt: document.getElementById("compare-prompt").value,
                                                   max_tokens: Number(document.getElementById("compare-max").value)});
      for (const role of ["base", "tuned"]) {
        const answer = data.answers[role];
        const shown = document.getElementById(`answer-${role}`);
        shown.textContent = answer.text.trim() ? answer.text : "(an empty answer: only spaces or line breaks)";
        shown.classList.toggle("muted", !answer.text.trim());
        document.getElementById(`finish-${role}`).textContent = `${answer.completion_tokens ?? "?"} tokens · ${answer.finish_reason}`;
      }
      say("compare-message", `answered through ${data.endpoint}/v1/chat/completions`);
    } catch (error) { say("compare-message", error.message, true); }
  });
}

setupData();
setupRun();
setupCompare();
