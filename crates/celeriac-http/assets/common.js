// Celeriac dashboard helpers shared by both pages. Data goes into the page
// only through textContent (never innerHTML), so task arguments and results
// cannot inject markup.
"use strict";

const Celeriac = (() => {
  /** Fetch JSON from the API; throws an Error carrying the server's message. */
  async function api(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { "Accept": "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) },
      ...options,
    });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body;
  }

  /** Build an element: el("td", {class: "num"}, "text", child…). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(state) {
    return el("span", { class: `badge ${state || ""}`, text: state || "?" });
  }

  function shortId(id) {
    return id && id.length > 12 ? `${id.slice(0, 8)}…` : id;
  }

  const pad = (n, w = 2) => String(n).padStart(w, "0");

  /** `2024-05-01 12:34:56.789`, local time, with the date. */
  function time(seconds) {
    if (!seconds) return "–";
    const d = new Date(seconds * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  /** `2024-05-01 12:34:56`, local time (tables). */
  function dateTime(seconds) {
    if (!seconds) return "–";
    return time(seconds).slice(0, 19);
  }

  function ago(seconds) {
    if (!seconds) return "–";
    const s = Math.max(0, Date.now() / 1000 - seconds);
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${(seconds * 1000).toFixed(1)} ms`;
    return `${seconds.toFixed(2)} s`;
  }

  function json(value) {
    if (value === null || value === undefined) return "–";
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function progressBar(progress, small) {
    const bar = el("div", { class: "progress-bar" });
    bar.style.width = `${progress ? progress.percent : 0}%`;
    const outer = el("div", { class: small ? "progress small" : "progress", role: "progressbar" }, bar);
    outer.setAttribute("aria-valuenow", progress ? String(Math.round(progress.percent)) : "0");
    return outer;
  }

  /** Open the live stream; calls handlers[eventName](data); shows state in #conn. */
  function live(handlers, onOpen) {
    const conn = document.getElementById("conn");
    let source = null;
    function connect() {
      source = new EventSource("/api/events/stream");
      source.addEventListener("open", () => {
        if (conn) { conn.dataset.state = "live"; conn.textContent = "live"; }
        if (onOpen) onOpen();
      });
      source.addEventListener("error", () => {
        if (conn) { conn.dataset.state = "lost"; conn.textContent = "reconnecting…"; }
      });
      for (const [name, handler] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => {
          let data = null;
          try { data = JSON.parse(event.data); } catch (_) { return; }
          handler(data);
        });
      }
    }
    connect();
    // Close the stream when the page is left: a browser keeps a left page's
    // EventSource open otherwise (back/forward cache), and six of them use
    // up its connections to this server, stalling every later request.
    window.addEventListener("pagehide", () => { if (source) source.close(); });
    window.addEventListener("pageshow", (event) => { if (event.persisted) { source.close(); connect(); } });
    return () => source && source.close();
  }

  /** `ValueError: boom` from a stored `{exc_type, exc_message}`. */
  function excText(result) {
    if (!result || !result.exc_type) return null;
    const m = result.exc_message;
    const text = Array.isArray(m) && m.length === 1 && typeof m[0] === "string" ? m[0]
      : typeof m === "string" ? m : JSON.stringify(m);
    return `${result.exc_type}: ${text}`;
  }

  const READY = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

  return { api, el, badge, shortId, time, dateTime, ago, duration, json, progressBar, live, excText, READY };
})();
