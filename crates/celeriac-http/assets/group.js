// One group's page: its members with their states and a progress bar of
// finished members. It re-reads /api/groups/{id} when the live stream
// reports a change of one of its members (one request at a time; changes
// during a request cause one more 250 ms later), and every
// 2 s while unfinished in case a member's change came from elsewhere (a
// Python worker sending no events). Values go in with textContent only.
"use strict";

(() => {
  const { api, el, badge, json, live, excText } = Celeriac;
  const $ = (id) => document.getElementById(id);
  const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  let members = new Set();
  let ready = false;
  let inflight = false;
  let again = false;
  let timer = null;

  function resultText(m) {
    if (!m.ready) return "–";
    return excText(m.result) || json(m.result);
  }

  function show(g) {
    members = new Set(g.members.map((m) => m.id));
    ready = g.ready;
    const label = g.ready ? (g.failed ? "FAILURE" : "SUCCESS") : "RUNNING";
    document.title = `Group ${g.completed}/${g.total} · Celeriac`;
    $("group-id").textContent = g.id;
    $("group-state").replaceWith(Object.assign(badge(label), { id: "group-state" }));
    const done = g.total ? (g.completed / g.total) * 100 : 100;
    const failed = g.total ? (g.failed / g.total) * 100 : 0;
    $("group-progress-bar").style.width = `${done}%`;
    $("group-failed-bar").style.width = `${failed}%`;
    const bar = $("group-progress");
    bar.setAttribute("aria-valuemax", String(g.total));
    bar.setAttribute("aria-valuenow", String(g.completed));
    bar.dataset.completed = String(g.completed);
    bar.dataset.failed = String(g.failed);
    bar.dataset.total = String(g.total);
    $("group-progress-text").textContent =
      `${g.completed} of ${g.total} succeeded` + (g.failed ? `, ${g.failed} failed` : "") + (g.ready ? " — done." : "");
    $("group-total").textContent = String(g.total);
    $("group-completed").textContent = String(g.completed);
    $("group-failed").textContent = String(g.failed);
    $("group-source").textContent = g.source === "saved"
      ? "saved in the result backend (exact)"
      : "members seen by this server (unsaved group: some may be missing)";
    const chord = $("group-chord");
    chord.replaceChildren(g.chord_id
      ? el("a", { href: `/dashboard/tasks/${encodeURIComponent(g.chord_id)}`, text: g.chord_id, class: "mono" })
      : "–");
    const rows = g.members.map((m, i) => el("tr", { "data-task-id": m.id, "data-state": m.state },
      el("td", { class: "num", text: String(i) }),
      el("td", { class: "mono" }, el("a", { href: `/dashboard/tasks/${encodeURIComponent(m.id)}`, text: m.id })),
      el("td", { text: m.name || "–" }),
      el("td", {}, badge(m.state)),
      el("td", { class: "result mono", text: resultText(m) })));
    document.querySelector("#members tbody").replaceChildren(...rows);
  }

  async function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      show(await api(`/api/groups/${encodeURIComponent(id)}`));
      $("group-error").textContent = "";
    } catch (err) {
      $("group-error").textContent = err.message;
    } finally {
      inflight = false;
    }
    if (again) { again = false; setTimeout(refresh, 250); }
    clearTimeout(timer);
    timer = setTimeout(refresh, ready ? 10000 : 2000);
  }

  live({
    task: (t) => { if (t.group_id === id || members.has(t.id)) refresh(); },
    resync: refresh,
  }, refresh);
  refresh();
})();
