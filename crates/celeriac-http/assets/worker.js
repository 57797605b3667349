// One worker's page: its counts, registered tasks with their rate limits,
// queues and stats (asked over remote control by the server), the
// controls Flower has (rate limit, shutdown), and its recent tasks.
"use strict";

(() => {
  const { api, el, badge, shortId, dateTime, duration, live } = Celeriac;
  const $ = (id) => document.getElementById(id);
  const name = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const base = `/api/workers/${encodeURIComponent(name)}`;
  let inflight = false;

  function say(text, error) {
    const out = $("control-result");
    out.textContent = text;
    out.classList.toggle("error", !!error);
  }

  function status(online) {
    $("worker-status").replaceChildren(el("span", { class: online ? "dot on" : "dot" }), online ? "online" : "offline");
    $("worker-status").dataset.online = online ? "true" : "false";
  }

  function show(d) {
    const w = d.worker;
    document.title = `${w.hostname} · Celeriac`;
    $("worker-name").textContent = w.hostname;
    status(w.online);
    $("worker-software").textContent = [w.sw_ident, w.sw_ver, w.sw_sys].filter(Boolean).join(" ");
    $("card-succeeded").textContent = d.succeeded;
    $("card-failed").textContent = d.failed;
    $("card-active").textContent = w.active;
    $("card-processed").textContent = w.processed;
    const pool = (d.stats && d.stats.pool) || {};
    $("card-concurrency").textContent = pool["max-concurrency"] ?? "–";
    $("card-load").textContent = (w.loadavg || []).map((x) => x.toFixed(2)).join(" / ") || "–";
    const body = document.querySelector("#registered tbody");
    body.replaceChildren(...d.registered.map((t) => el("tr", { "data-task-name": t.name },
      el("td", { class: "mono", text: t.name }),
      el("td", { class: "mono rate", text: t.rate_limit || "none" }))));
    const select = $("rate-task");
    const chosen = select.value;
    select.replaceChildren(...d.registered.map((t) => el("option", { value: t.name, text: t.name })));
    if (chosen) select.value = chosen;
    $("queues").replaceChildren(...d.queues.map((q) => el("span", { class: "chip", text: q })));
    $("stat-pid").textContent = (d.stats && d.stats.pid) ?? w.pid ?? "–";
    $("stat-uptime").textContent = d.stats && d.stats.uptime !== undefined ? `${d.stats.uptime} s` : "–";
    $("stat-prefetch").textContent = (d.stats && d.stats.prefetch_count) ?? "–";
    $("stat-pool").textContent = pool.implementation || "–";
    $("stat-control").textContent = d.control === "pidbox" ? "Celery pidbox (Redis)" : "event bus (SQLite / memory broker)";
    const note = $("control-note");
    note.hidden = !d.control_error;
    note.textContent = d.control_error ? `Remote control: ${d.control_error}` : "";
    $("rate-submit").disabled = !d.registered.length;
  }

  async function refresh() {
    if (inflight) return;
    inflight = true;
    try {
      show(await api(base));
    } catch (err) {
      say(err.message, true);
    } finally {
      inflight = false;
    }
    loadTasks();
  }

  async function loadTasks() {
    let page;
    try { page = await api(`/api/tasks?worker=${encodeURIComponent(name)}&limit=25`); } catch (_) { return; }
    document.querySelector("#worker-tasks tbody").replaceChildren(...page.tasks.map((t) => el("tr", { "data-task-id": t.id, "data-state": t.state },
      el("td", {}, el("a", { href: `/dashboard/tasks/${encodeURIComponent(t.id)}`, class: "mono", text: shortId(t.id), title: t.id })),
      el("td", { class: "mono", text: t.name || "–" }),
      el("td", {}, badge(t.state)),
      el("td", { class: "mono args", text: t.argsrepr || "" }),
      el("td", { text: dateTime(t.received_at || t.sent_at || t.started_at) }),
      el("td", { class: "num", text: t.runtime !== null && t.runtime !== undefined ? duration(t.runtime) : "" }))));
    $("worker-tasks-empty").hidden = page.tasks.length > 0;
  }

  $("rate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = JSON.stringify({ task_name: $("rate-task").value, rate_limit: $("rate-value").value.trim() });
    $("rate-submit").disabled = true;
    try {
      const answer = await api(`${base}/rate-limit`, { method: "POST", body });
      say(`${answer.worker}: ${answer.reply.ok || JSON.stringify(answer.reply)}`);
    } catch (err) {
      say(err.message, true);
    }
    $("rate-submit").disabled = false;
    refresh();
  });

  // Two clicks: the first asks for confirmation.
  $("shutdown").addEventListener("click", () => {
    $("shutdown").hidden = true;
    $("shutdown-confirm").hidden = false;
  });
  $("shutdown-confirm").addEventListener("click", async () => {
    $("shutdown-confirm").disabled = true;
    try {
      const answer = await api(`${base}/shutdown`, { method: "POST" });
      say(`${answer.worker}: ${answer.reply.ok || JSON.stringify(answer.reply)}`);
    } catch (err) {
      say(err.message, true);
      $("shutdown-confirm").disabled = false;
    }
  });

  live({
    worker: (w) => { if (w.hostname === name) status(w.online); },
    task: (t) => { if (t.worker === name) loadTasks(); },
  });
  refresh();
  setInterval(refresh, 5000);
})();
