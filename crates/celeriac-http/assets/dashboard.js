// The dashboard: fetch the lists once, then apply live updates from
// /api/events/stream. Rendering is batched (at most ~5 times a second) so a
// busy cluster does not swamp the browser.
"use strict";

(() => {
  const { api, el, badge, shortId, ago, dateTime, duration, progressBar, live, excText, READY } = Celeriac;
  const PAGE = 50;
  // The task table is a page the server filtered, searched, sorted and
  // cut (GET /api/tasks): live updates change rows in place and reload
  // the page (at most once a second) when something else changed.
  let taskPage = { tasks: [], total: 0, remembered: 0 };
  const view = { offset: 0, sort: "newest", order: "desc" };
  let reloadTimer = null;
  let lastReload = 0;
  let loading = false;
  const workers = new Map();   // hostname -> {view, seen}
  let queues = [];
  let overview = null;
  let deadNewest = undefined;
  let dirty = { tasks: true, workers: true, queues: true, cards: true };
  let scheduled = false;

  const $ = (id) => document.getElementById(id);

  function touch(what) {
    dirty[what] = true;
    if (!scheduled) {
      scheduled = true;
      setTimeout(render, 200);
    }
  }

  function receivedAt(t) {
    return t.received_at || t.sent_at || t.started_at || t.finished_at || 0;
  }

  // ---------------------------------------------------------------- tasks

  function taskRow(t) {
    const link = el("a", { href: `/dashboard/tasks/${encodeURIComponent(t.id)}`, class: "mono", text: shortId(t.id), title: t.id });
    let outcome;
    if (t.progress && !READY.has(t.state)) {
      outcome = el("span", {}, progressBar(t.progress, true), `${Math.round(t.progress.percent)}%`);
    } else if (t.state === "SUCCESS") {
      outcome = t.result !== null && t.result !== undefined ? JSON.stringify(t.result) : (t.result_repr || "");
    } else if (t.state === "FAILURE" || t.state === "RETRY") {
      outcome = t.exception || excText(t.result) || "";
    } else {
      outcome = "";
    }
    const actions = el("td", { class: "actions-cell" });
    if (!READY.has(t.state)) {
      actions.append(el("button", { class: "small danger revoke", text: "Revoke", title: "Revoke this task", onclick: (e) => act(e, `/api/tasks/${encodeURIComponent(t.id)}/revoke`) }));
    } else if (t.retryable) {
      actions.append(el("button", { class: "small retry", text: "Retry", title: "Send the same call again", onclick: (e) => act(e, `/api/tasks/${encodeURIComponent(t.id)}/retry`) }));
    }
    const worker = t.worker
      ? el("a", { href: `/dashboard/workers/${encodeURIComponent(t.worker)}`, text: t.worker })
      : "";
    const at = receivedAt(t);
    return el("tr", { "data-task-id": t.id, "data-state": t.state },
      el("td", {}, link),
      el("td", { class: "mono", text: t.name || "–" }),
      el("td", { class: "state" }, badge(t.state)),
      el("td", { class: "mono args", text: t.argsrepr || "", title: t.argsrepr || "" }),
      el("td", { class: "mono result", title: typeof outcome === "string" ? outcome : "" }, outcome),
      el("td", { class: "mono" }, worker),
      el("td", { class: "when", text: dateTime(at), title: at ? ago(at) : "" }),
      el("td", { class: "num", text: t.runtime !== null && t.runtime !== undefined ? duration(t.runtime) : "" }),
      actions);
  }

  async function act(event, path) {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const answer = await api(path, { method: "POST" });
      if (answer && answer.task_id && answer.retry_of) {
        flash(`retried as ${answer.task_id}`);
      }
    } catch (err) {
      flash(err.message, true);
      button.disabled = false;
    }
  }

  function flash(text, error) {
    const out = $("send-result");
    out.textContent = text;
    out.classList.toggle("error", !!error);
  }

  /** Seconds since the epoch from a datetime-local input, or "". */
  function epoch(input) {
    if (!input.value) return "";
    const ms = new Date(input.value).getTime();
    return Number.isFinite(ms) ? String(ms / 1000) : "";
  }

  function taskQuery() {
    const params = new URLSearchParams();
    const add = (key, value) => { if (value !== "" && value !== null && value !== undefined) params.set(key, value); };
    add("q", $("filter-q").value.trim());
    add("state", $("filter-state").value);
    add("name", $("filter-name").value.trim());
    add("worker", $("filter-worker").value);
    add("since", epoch($("filter-since")));
    add("until", epoch($("filter-until")));
    add("sort", view.sort);
    add("order", view.order);
    add("offset", String(view.offset));
    add("limit", String(PAGE));
    return params.toString();
  }

  async function loadTasks() {
    if (loading) { scheduleReload(); return; }
    loading = true;
    lastReload = Date.now();
    try {
      taskPage = await api(`/api/tasks?${taskQuery()}`);
      $("task-filters").dataset.error = "";
    } catch (err) {
      $("task-filters").dataset.error = err.message;
      flash(err.message, true);
    } finally {
      loading = false;
    }
    touch("tasks");
  }

  /** Reload the page soon, at most once a second. */
  function scheduleReload() {
    if (reloadTimer) return;
    const wait = Math.max(0, 1000 - (Date.now() - lastReload));
    reloadTimer = setTimeout(() => { reloadTimer = null; loadTasks(); }, wait);
  }

  function renderTasks() {
    const body = document.querySelector("#tasks tbody");
    body.replaceChildren(...taskPage.tasks.map(taskRow));
    $("tasks-empty").hidden = taskPage.tasks.length > 0;
    const first = taskPage.total ? view.offset + 1 : 0;
    const last = view.offset + taskPage.tasks.length;
    $("tasks-count").textContent = `${first}–${last} of ${taskPage.total} matching (${taskPage.remembered} remembered)`;
    $("tasks-prev").disabled = view.offset === 0;
    $("tasks-next").disabled = last >= taskPage.total;
    for (const b of document.querySelectorAll("th button.sort")) {
      if (b.dataset.sort === view.sort) b.dataset.active = view.order; else delete b.dataset.active;
    }
  }

  function upsertTask(t) {
    const i = taskPage.tasks.findIndex((x) => x.id === t.id);
    if (i >= 0) {
      taskPage.tasks[i] = t;
      touch("tasks");
    }
    // New tasks, and changes that may move rows: the server decides.
    scheduleReload();
  }

  // ---------------------------------------------------------------- workers

  function workerOnline(w) {
    const age = Date.now() / 1000 - w.seen;
    return w.view.online && age <= w.view.freq * 2 + 1.5;
  }

  function renderWorkers() {
    const body = document.querySelector("#workers tbody");
    const rows = [...workers.values()].sort((a, b) => a.view.hostname.localeCompare(b.view.hostname)).map((w) => {
      const v = w.view;
      const online = workerOnline(w);
      return el("tr", { "data-worker": v.hostname },
        el("td", { class: "mono" }, el("a", { href: `/dashboard/workers/${encodeURIComponent(v.hostname)}`, text: v.hostname })),
        el("td", {}, el("span", { class: online ? "dot on" : "dot" }), online ? "online" : "offline"),
        el("td", { class: "num", text: v.active }),
        el("td", { class: "num", text: v.processed }),
        el("td", { class: "mono", text: (v.loadavg || []).map((x) => x.toFixed(2)).join(" / ") }),
        el("td", { class: "mono", text: [v.sw_ident, v.sw_ver].filter(Boolean).join(" ") }));
    });
    body.replaceChildren(...rows);
    $("workers-empty").hidden = rows.length > 0;
    const select = $("filter-worker");
    const known = new Set([...select.options].map((o) => o.value));
    for (const name of [...workers.keys()].sort()) {
      if (!known.has(name)) select.append(el("option", { value: name, text: name }));
    }
  }

  // ---------------------------------------------------------------- queues

  function sparkline(history) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 140 26");
    svg.setAttribute("preserveAspectRatio", "none");
    const max = Math.max(1, ...history);
    const step = history.length > 1 ? 140 / (history.length - 1) : 0;
    const points = history.map((v, i) => `${(i * step).toFixed(1)},${(24 - (v / max) * 22).toFixed(1)}`).join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points || "0,24 140,24");
    svg.append(line);
    return svg;
  }

  function renderQueues() {
    const body = document.querySelector("#queues tbody");
    body.replaceChildren(...queues.map((q) => el("tr", { "data-queue": q.name },
      el("td", { class: "mono", text: q.name }),
      el("td", { class: "num depth", text: q.depth === null || q.depth === undefined ? (q.error ? "error" : "–") : q.depth, title: q.error || "" }),
      el("td", { class: "num", text: (q.rate >= 0 ? "+" : "") + q.rate.toFixed(1) }),
      el("td", {}, sparkline(q.history || [])))));
  }

  // ---------------------------------------------------------------- cards

  function renderCards() {
    const counts = (overview && overview.tasks_by_state) || {};
    const online = [...workers.values()].filter(workerOnline).length;
    $("card-workers").textContent = online;
    $("card-queued").textContent = queues.reduce((n, q) => n + (q.depth || 0), 0);
    $("card-success").textContent = counts.SUCCESS || 0;
    $("card-failure").textContent = counts.FAILURE || 0;
    if (overview) {
      $("card-rate").textContent = overview.finished_per_sec.toFixed(1);
      $("card-dead").textContent = overview.dead_letters;
    }
  }

  // ---------------------------------------------------------------- dead letters

  async function loadDeadLetters() {
    let letters = [];
    try { letters = await api("/api/dead-letters?limit=50"); } catch (err) { return; }
    const body = document.querySelector("#dead-letters tbody");
    body.replaceChildren(...letters.map((d) => el("tr", { "data-dead-letter": d.id },
      el("td", { text: d.at }),
      el("td", { class: "mono", text: d.queue }),
      el("td", { class: "mono", text: d.task ? `${d.task} ${shortId(d.task_id || "")}` : "(unreadable)" , title: d.preview }),
      el("td", { text: d.reason }),
      el("td", {}, el("button", { class: "small requeue", text: "Requeue", onclick: async (e) => {
        e.currentTarget.disabled = true;
        try { await api(`/api/dead-letters/${encodeURIComponent(d.id)}/requeue`, { method: "POST" }); } catch (err) { flash(err.message, true); }
        loadDeadLetters();
      } })))));
    $("dead-empty").hidden = letters.length > 0;
  }

  // ---------------------------------------------------------------- loading

  function render() {
    scheduled = false;
    if (dirty.tasks) renderTasks();
    if (dirty.workers) renderWorkers();
    if (dirty.queues) renderQueues();
    if (dirty.cards) renderCards();
    dirty = { tasks: false, workers: false, queues: false, cards: false };
  }

  async function loadAll() {
    try {
      const [ov, ws, qs] = await Promise.all([
        api("/api/overview"), api("/api/workers"), api("/api/queues"),
      ]);
      overview = ov;
      $("transport").textContent = ov.transport ? `${ov.transport} broker` : "";
      const select = $("send-name");
      if (!select.options.length) {
        select.replaceChildren(...ov.registered.map((n) => el("option", { value: n, text: n })));
      }
      for (const w of ws) workers.set(w.hostname, { view: w, seen: Date.now() / 1000 - w.last_seen_secs });
      queues = qs;
      touch("workers"); touch("queues"); touch("cards");
      loadTasks();
    } catch (err) {
      flash(`could not load: ${err.message}`, true);
    }
    loadDeadLetters();
  }

  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("send-name").value;
    let args, kwargs;
    try { args = JSON.parse($("send-args").value || "[]"); kwargs = JSON.parse($("send-kwargs").value || "{}"); }
    catch (err) { flash(`args/kwargs: ${err.message}`, true); return; }
    const options = {};
    const countdown = $("send-countdown").value;
    if (countdown !== "") options.countdown = Number(countdown);
    try {
      const sent = await api(`/api/tasks/${encodeURIComponent(name)}`, { method: "POST", body: JSON.stringify({ args, kwargs, options }) });
      flash(`sent ${sent.task_id}`);
    } catch (err) {
      flash(err.message, true);
    }
  });
  $("send-group").addEventListener("click", async () => {
    let args_list, kwargs;
    try { args_list = JSON.parse($("send-args").value || "[]"); kwargs = JSON.parse($("send-kwargs").value || "{}"); }
    catch (err) { flash(`args/kwargs: ${err.message}`, true); return; }
    const options = {};
    const countdown = $("send-countdown").value;
    if (countdown !== "") options.countdown = Number(countdown);
    try {
      const sent = await api("/api/groups", { method: "POST", body: JSON.stringify({ task: $("send-name").value, args_list, kwargs, options }) });
      const out = $("send-result");
      out.classList.remove("error");
      out.replaceChildren(`sent ${sent.members.length} tasks as group `,
        el("a", { href: `/dashboard/groups/${encodeURIComponent(sent.group_id)}`, text: sent.group_id, id: "sent-group-link" }));
    } catch (err) {
      flash(err.message, true);
    }
  });
  // Filters and search go to the server; typing waits for a pause.
  let typing = null;
  const refilter = () => { view.offset = 0; clearTimeout(typing); typing = setTimeout(loadTasks, 250); };
  for (const id of ["filter-q", "filter-name"]) $(id).addEventListener("input", refilter);
  for (const id of ["filter-state", "filter-worker", "filter-since", "filter-until"]) $(id).addEventListener("change", refilter);
  $("task-filters").addEventListener("submit", (e) => { e.preventDefault(); refilter(); });
  for (const b of document.querySelectorAll("th button.sort")) {
    b.addEventListener("click", () => {
      if (view.sort === b.dataset.sort) view.order = view.order === "desc" ? "asc" : "desc";
      else { view.sort = b.dataset.sort; view.order = "desc"; }
      view.offset = 0;
      loadTasks();
    });
  }
  $("tasks-prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); loadTasks(); });
  $("tasks-next").addEventListener("click", () => { view.offset += PAGE; loadTasks(); });

  live({
    task: upsertTask,
    worker: (w) => { workers.set(w.hostname, { view: w, seen: Date.now() / 1000 }); touch("workers"); touch("cards"); },
    queues: (data) => {
      queues = data.queues;
      if (overview) overview.dead_letters = data.dead_letters;
      if (data.newest_dead_letter !== deadNewest) {
        deadNewest = data.newest_dead_letter;
        loadDeadLetters();
      }
      touch("queues"); touch("cards");
    },
    resync: loadAll,
  }, loadAll);

  // Liveness and "seen … ago" change with time alone; the rate comes from the server.
  setInterval(async () => {
    touch("workers"); touch("tasks");
    scheduleReload();
    try { overview = { ...(overview || {}), ...(await api("/api/overview")) }; touch("cards"); } catch (_) { /* shown by #conn */ }
  }, 2000);
})();
