// The scheduled page: tasks waiting in the broker for their ETA or
// countdown (GET /api/scheduled), soonest first. The list is read again
// every 5 s and when a task event arrives (a due task is received by a
// worker); the time left ticks every second in between.
"use strict";

(() => {
  const { api, el, shortId, dateTime, live } = Celeriac;
  const $ = (id) => document.getElementById(id);
  const LIMIT = 200;
  let list = { supported: true, truncated: false, tasks: [] };
  let loadedAt = Date.now() / 1000;
  let loading = false;
  let again = null;

  /** `in 1 h 5 min`, `in 42 s`, or `due` once the ETA has passed. */
  function left(seconds) {
    if (seconds <= 0) return "due";
    const s = Math.ceil(seconds);
    if (s < 60) return `in ${s} s`;
    if (s < 3600) return `in ${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `in ${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `in ${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function row(t) {
    const id = t.id
      ? el("a", { href: `/dashboard/tasks/${encodeURIComponent(t.id)}`, class: "mono", text: shortId(t.id), title: t.id })
      : el("span", { class: "mono", text: "(unreadable)" });
    return el("tr", { "data-task-id": t.id || "" },
      el("td", {}, id),
      el("td", { class: "mono", text: t.name || "–" }),
      el("td", { class: "mono", text: t.queue }),
      el("td", { class: "when", text: dateTime(t.eta_unix), title: t.eta }),
      el("td", { class: "num left", "data-eta": String(t.eta_unix), text: left(t.eta_unix - Date.now() / 1000) }),
      el("td", { class: "mono args", text: t.argsrepr || "", title: t.argsrepr || "" }),
      el("td", { class: "mono args", text: t.kwargsrepr || "", title: t.kwargsrepr || "" }),
      el("td", { class: "num", text: t.retries }));
  }

  function note(text) {
    $("scheduled-note").textContent = text || "";
    $("scheduled-note").hidden = !text;
  }

  function render() {
    document.querySelector("#scheduled tbody").replaceChildren(...list.tasks.map(row));
    $("scheduled-empty").hidden = list.tasks.length > 0 || !list.supported;
    const n = list.tasks.length;
    $("scheduled-count").textContent = list.truncated ? `the soonest ${n} shown` : `${n} waiting`;
    if (!list.supported) note(list.note || "This broker cannot list scheduled tasks.");
    else if (list.truncated) note(`More than ${n} tasks wait; the soonest ${n} are shown.`);
    else note("");
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const cell of document.querySelectorAll("#scheduled td.left")) {
      cell.textContent = left(Number(cell.dataset.eta) - now);
    }
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      list = await api(`/api/scheduled?limit=${LIMIT}`);
      loadedAt = Date.now() / 1000;
      render();
    } catch (err) {
      note(`could not load: ${err.message}`);
    } finally {
      loading = false;
    }
  }

  /** Read the list again soon, at most once a second. */
  function soon() {
    if (again) return;
    const wait = Math.max(0, 1000 - (Date.now() / 1000 - loadedAt) * 1000);
    again = setTimeout(() => { again = null; load(); }, wait);
  }

  live({ task: soon, resync: load }, load);
  setInterval(tick, 1000);
  setInterval(load, 5000);
})();
