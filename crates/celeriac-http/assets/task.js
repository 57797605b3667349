// One task's page: polls /api/tasks/{id} while the task runs (progress is
// stored in the result backend, not sent as an event) and refreshes at once
// when the live stream reports a change of this task.
"use strict";

(() => {
  const { api, badge, time, duration, json, live, excText, READY } = Celeriac;
  const $ = (id) => document.getElementById(id);
  const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  let current = null;
  let timer = null;
  let inflight = false;

  function show(t) {
    current = t;
    document.title = `${t.name || "Task"} ${t.state} · Celeriac`;
    $("task-name").textContent = t.name || "Task (name not known yet)";
    $("task-id").textContent = t.id;
    const state = $("state");
    state.replaceWith(Object.assign(badge(t.state), { id: "state" }));
    const p = t.progress;
    const percent = t.state === "SUCCESS" ? 100 : p ? p.percent : 0;
    $("progress-bar").style.width = `${percent}%`;
    $("progress").setAttribute("aria-valuenow", String(Math.round(percent)));
    $("progress-text").textContent = p
      ? `${p.current.toLocaleString()} of ${p.total.toLocaleString()} (${percent.toFixed(0)}%)`
      : t.state === "SUCCESS" ? "Done." : t.known ? "No progress reported." : "Unknown task id: PENDING, as Celery reports it.";
    $("args").textContent = t.args ? json(t.args) : (t.argsrepr || "–");
    $("kwargs").textContent = t.kwargs ? json(t.kwargs) : (t.kwargsrepr || "–");
    const result = t.state === "SUCCESS" ? (t.result !== null ? json(t.result) : (t.result_repr || "–"))
      : READY.has(t.state) || t.state === "RETRY" ? json(t.result) : "–";
    $("result").textContent = result;
    $("exception").textContent = t.exception || excText(t.result) || "–";
    $("worker").textContent = t.worker || "–";
    $("queue").textContent = t.queue || "–";
    $("retries").textContent = t.retries ?? "–";
    $("sent").textContent = time(t.sent_at);
    $("received").textContent = time(t.received_at);
    $("started").textContent = time(t.started_at);
    $("finished").textContent = time(t.finished_at);
    $("runtime").textContent = duration(t.runtime);
    $("eta").textContent = t.eta || "–";
    $("traceback-panel").hidden = !t.traceback;
    $("traceback").textContent = t.traceback || "";
    relations(t);
    const ready = READY.has(t.state);
    $("revoke").disabled = ready;
    $("terminate").disabled = ready;
    $("retry").disabled = !t.retryable;
  }

  /** Links to related tasks and groups (ids go in as text, encoded in hrefs). */
  function link(kind, target) {
    return Celeriac.el("a", { href: `/dashboard/${kind}/${encodeURIComponent(target)}`, text: target });
  }

  function fill(cell, links) {
    $(cell).replaceChildren(...(links.length ? links : ["–"]));
  }

  function relations(t) {
    fill("parent", t.parent_id ? [link("tasks", t.parent_id)] : []);
    fill("root", t.root_id && t.root_id !== t.id ? [link("tasks", t.root_id)] : []);
    const group = t.group_id ? [link("groups", t.group_id)] : [];
    if (t.group_id && t.group_index !== null && t.group_index !== undefined) group.push(`member #${t.group_index}`);
    fill("group", group);
    fill("chord", t.chord_id ? [link("tasks", t.chord_id)] : []);
    const children = (t.children || []).map((c) => link("tasks", c));
    for (const g of t.child_groups || []) children.push(link("groups", g));
    fill("children", children);
  }

  async function refresh() {
    if (inflight) return;
    inflight = true;
    try {
      show(await api(`/api/tasks/${encodeURIComponent(id)}`));
    } catch (err) {
      $("action-result").textContent = err.message;
    } finally {
      inflight = false;
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    const ready = current && READY.has(current.state);
    timer = setTimeout(refresh, ready ? 5000 : 500);
  }

  async function act(path, label) {
    const out = $("action-result");
    out.classList.remove("error");
    try {
      const answer = await api(path, { method: "POST" });
      if (answer.retry_of) {
        out.textContent = "";
        out.append(`${label}: `, Celeriac.el("a", { href: `/dashboard/tasks/${encodeURIComponent(answer.task_id)}`, text: answer.task_id, id: "retried-link" }));
      } else {
        out.textContent = `${label}: ${answer.state || "ok"}`;
      }
      refresh();
    } catch (err) {
      out.textContent = err.message;
      out.classList.add("error");
    }
  }

  $("revoke").addEventListener("click", () => act(`/api/tasks/${encodeURIComponent(id)}/revoke`, "revoked"));
  $("terminate").addEventListener("click", () => act(`/api/tasks/${encodeURIComponent(id)}/revoke?terminate=true`, "revoked"));
  $("retry").addEventListener("click", () => act(`/api/tasks/${encodeURIComponent(id)}/retry`, "sent again as"));

  live({ task: (t) => { if (t.id === id) refresh(); } });
  refresh();
})();
