// trialwright chat page. Every piece of server text goes into the page with textContent,
// never as HTML, so nothing a model writes can run in the browser.
"use strict";

const $ = (id) => document.getElementById(id);
let threadId = null;
let busy = false;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

async function newThread() {
  const r = await fetch("/api/threads", {method: "POST", headers: {"content-type": "application/json"}, body: "{}"});
  threadId = (await r.json()).thread_id;
  localStorage.setItem("trialwright-thread", threadId);
  await load();
}

async function load() {
  $("thread-id").textContent = threadId;
  const r = await fetch(`/api/threads/${threadId}`);
  if (r.ok) render(await r.json());
}

function renderMessages(messages) {
  const list = $("messages");
  clear(list);
  for (const m of messages) {
    const li = el("li", null, `msg ${m.role}`);
    li.appendChild(el("div", m.role === "user" ? "you" : "assistant", "who"));
    li.appendChild(el("div", m.text, "text"));
    list.appendChild(li);
  }
  list.scrollTop = list.scrollHeight;
}

function renderDraft(d, view) {
  const box = $("draft");
  clear(box);
  const badge = $("draft-state");
  badge.textContent = !d ? "" : view.approved ? "approved" : `revision ${view.revision}`;
  badge.className = "badge" + (view.approved ? " ok" : "");
  if (!d) { box.appendChild(el("p", "No draft yet.", "muted")); return; }
  box.appendChild(el("h3", d.title, "draft-title"));
  box.appendChild(el("p", `${d.phase} · expected outcome: ${d.label === 1 ? "success" : "failure"} · enrollment ${d.enrollment} · ages ${d.minimum_age_years}–${d.maximum_age_years ?? "no limit"}`, "meta"));
  box.appendChild(el("p", `Conditions: ${d.diseases.join(", ")} · Interventions: ${d.drugs.join(", ")}`, "meta"));
  box.appendChild(el("p", d.brief_summary));
  const section = (title, items) => {
    box.appendChild(el("h4", title));
    const ul = el("ul");
    for (const item of items) ul.appendChild(el("li", item));
    box.appendChild(ul);
  };
  section("Design", [`${d.design.allocation}, ${d.design.intervention_model}, masking: ${d.design.masking}, purpose: ${d.design.primary_purpose}`]);
  section("Arms", d.arms.map((a) => `${a.label} (${a.type}): ${a.description}`));
  section("Primary outcome", [`${d.primary_outcome.measure} (${d.primary_outcome.time_frame})`]);
  section("Inclusion criteria", d.inclusion_criteria);
  section("Exclusion criteria", d.exclusion_criteria);
  section("Outcome", [d.outcome_summary]);
}

function renderCritic(c) {
  const box = $("critic");
  clear(box);
  if (!c || !c.checks_total) { box.appendChild(el("p", "Findings appear with the draft.", "muted")); return; }
  const v = c.verdict;
  if (c.outcome) box.appendChild(el("p", `Outcome text reads as: ${c.outcome.reading.replace(/_/g, " ")} (${c.outcome.method})${c.outcome.agrees ? "" : " · does not match"}`, "reasons"));
  const skipped = c.checks_skipped ? `, ${c.checks_skipped} skipped` : "";
  const head = el("p", `Checks ${c.checks_passed}/${c.checks_total} passed${skipped}` +
    (v ? ` · blinded judge: ${Math.round(v.score * 100)}% yes (needs ${Math.round(v.threshold * 100)}%)${v.accepted ? "" : " · not accepted"}` : " · judge not asked"),
    "verdict " + (!c.checks_failed && v && v.accepted ? "ok" : "warn"));
  box.appendChild(head);
  const ul = el("ul", null, "checks");
  for (const ch of c.checks) {
    const mark = ch.status === "skipped" ? `– ${ch.name}: skipped (${ch.message})`
      : ch.passed ? `✓ ${ch.name}` : `✗ ${ch.name}: ${ch.message}`;
    ul.appendChild(el("li", mark, ch.status === "skipped" ? "skip" : ch.passed ? "pass" : "fail"));
  }
  box.appendChild(ul);
  if (v) {
    const answers = Object.entries(v.answers || {}).map(([k, yes]) => `${yes ? "✓" : "✗"} ${k.replace(/_/g, " ")}`).join(" · ");
    box.appendChild(el("p", answers, "scores"));
    if (v.vetoed && v.vetoed.length) box.appendChild(el("p", `Veto: ${v.vetoed.join(", ")}`, "reasons"));
    if (v.feedback) box.appendChild(el("p", `Feedback: ${v.feedback}`, "reasons"));
  }
}

function renderEvidence(rows) {
  const list = $("evidence");
  clear(list);
  if (!rows.length) { list.appendChild(el("li", "Retrieved trials appear here.", "muted")); return; }
  for (const r of rows) {
    const li = el("li", null, "evidence");
    li.appendChild(el("div", r.nctid, "nctid"));
    li.appendChild(el("div", r.why, "why"));
    li.appendChild(el("div", r.snippet + "…", "snippet"));
    list.appendChild(li);
  }
}

function render(view) {
  if (!view) return;
  renderMessages(view.messages);
  renderDraft(view.draft, view);
  renderCritic(view.critic);
  renderEvidence(view.evidence);
  $("approve").disabled = busy || !view.draft || !view.waiting;
  $("export").disabled = busy || !view.draft;
  $("continue").hidden = !view.unfinished;
  $("export-panel").hidden = !view.exported;
  if (view.exported) {
    $("export-json").href = `/api/threads/${threadId}/export.json`;
    $("export-md").href = `/api/threads/${threadId}/export.md`;
    $("export-markdown").textContent = view.export_markdown;
  }
}

function setBusy(on) {
  busy = on;
  for (const id of ["send", "approve", "export", "continue", "input"]) $(id).disabled = on;
  $("live").hidden = !on;
  if (on) { $("live-text").textContent = ""; $("live-label").textContent = "working"; }
}

async function send(body) {
  if (busy) return;
  $("error").hidden = true;
  setBusy(true);
  let last = null;
  try {
    const r = await fetch(`/api/threads/${threadId}/send`, {
      method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    if (!r.ok) throw new Error((await r.json()).error || `HTTP ${r.status}`);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).replace(/^data: /, "");
        buffer = buffer.slice(cut + 2);
        const ev = JSON.parse(line);
        if (ev.type === "token") {
          $("live-label").textContent = ev.label;
          $("live-text").textContent = ev.text;
        } else if (ev.type === "step") {
          $("live-label").textContent = `${ev.node} done`;
          render(ev.view);
        } else if (ev.type === "error") {
          $("error").textContent = ev.message;
          $("error").hidden = false;
        } else if (ev.type === "done") {
          last = ev.view;
        }
      }
    }
  } catch (err) {
    $("error").textContent = String(err.message || err);
    $("error").hidden = false;
  } finally {
    setBusy(false);
    if (last) render(last); else await load();
  }
}

window.addEventListener("DOMContentLoaded", async () => {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("input").value.trim();
    if (!text) return;
    $("input").value = "";
    send({text});
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  $("approve").addEventListener("click", () => send({action: "approve"}));
  $("export").addEventListener("click", () => send({action: "export"}));
  $("continue").addEventListener("click", () => send({action: "continue"}));
  $("new-thread").addEventListener("click", newThread);
  threadId = localStorage.getItem("trialwright-thread");
  if (!threadId || !/^[A-Za-z0-9_-]{8,64}$/.test(threadId)) await newThread(); else await load();
});
