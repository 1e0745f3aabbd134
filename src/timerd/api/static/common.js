// Shared by the status and docs pages: the API token, fetch with it, small DOM helpers.
//
// Token: if the daemon requires a Bearer token, open the page as `/#token=SECRET` (or
// `?token=SECRET`). The page keeps it in localStorage ("timerd.token"), removes it from the
// address bar, and sends `Authorization: Bearer SECRET` on every API call. An empty
// `#token=` forgets it. A 401 answer shows a box to paste the token into.
"use strict";

const timerd = (() => {
  const TOKEN_KEY = "timerd.token";

  function storage() {
    try {
      return window.localStorage;
    } catch {
      return null;
    }
  }

  function takeTokenFromUrl() {
    const hash = new URLSearchParams(location.hash.slice(1));
    const query = new URLSearchParams(location.search);
    const token = hash.has("token") ? hash.get("token") : query.get("token");
    if (token === null) return;
    setToken(token);
    hash.delete("token");
    query.delete("token");
    const q = query.toString();
    const h = hash.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : "") + (h ? "#" + h : ""));
  }

  function getToken() {
    const s = storage();
    return (s && s.getItem(TOKEN_KEY)) || "";
  }

  function setToken(token) {
    const s = storage();
    if (!s) return;
    if (token) s.setItem(TOKEN_KEY, token);
    else s.removeItem(TOKEN_KEY);
  }

  /** Send one request; resolve to {status, ok, headers, data, text} and never reject on HTTP errors. */
  async function api(method, path, body, extraHeaders) {
    const headers = { Accept: "application/json", ...(extraHeaders || {}) };
    const token = getToken();
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined && body !== null) {
      headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.status === 401) showTokenPanel();
    return { status: response.status, ok: response.ok, headers: response.headers, data, text };
  }

  /** The one-line reason of a failed answer (problem+json detail, else the status). */
  function reason(result) {
    const d = result.data;
    if (d && (d.detail || d.title)) return d.detail || d.title;
    return "HTTP " + result.status;
  }

  /** Make an element: el("td", {class: "num"}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function showTokenPanel() {
    const panel = document.getElementById("token-panel");
    if (panel) panel.hidden = false;
  }

  function wireTokenPanel(onSaved) {
    const form = document.getElementById("token-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("token-input");
      setToken(input.value.trim());
      input.value = "";
      document.getElementById("token-panel").hidden = true;
      if (onSaved) onSaved();
    });
  }

  let toastTimer = null;
  function toast(message) {
    const node = document.getElementById("toast");
    if (!node) return;
    node.textContent = message;
    node.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => node.classList.remove("show"), 4000);
  }

  /** Seconds as people read them: 850 ms, 12.4 s, 3m 05s, 2h 10m, 3d 4h. */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
    const s = Math.abs(seconds);
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms";
    if (s < 60) return s.toFixed(1) + " s";
    const whole = Math.ceil(s);
    const d = Math.floor(whole / 86400);
    const h = Math.floor((whole % 86400) / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const sec = whole % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    return `${m}m ${String(sec).padStart(2, "0")}s`;
  }

  function clockTime(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "-";
    const d = new Date(epochSeconds * 1000);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  takeTokenFromUrl();
  return { api, reason, el, toast, duration, clockTime, wireTokenPanel, getToken, setToken };
})();
