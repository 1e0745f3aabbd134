// Shared by every page: the API token, fetch with it, the stale-data banner, a confirmation
// dialog, time formatting and small DOM helpers.
//
// Token: when the daemon answers 401, the page asks for the token once and keeps it in this
// tab's sessionStorage ("timerd.token"): never in a URL, a cookie or localStorage, so it
// goes when the tab closes. Every request is a same-origin fetch: it carries this page's own
// Origin, which timerd accepts, and asks for no CORS.
"use strict";

const timerd = (() => {
  const TOKEN_KEY = "timerd.token";
  const retries = [];

  function storage() {
    try {
      return window.sessionStorage;
    } catch {
      return null;
    }
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

  /** Send one request; resolve to {status, ok, data, text}; reject only when unreachable. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined && body !== null) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.status === 401) askForToken(Boolean(token));
    return { status: response.status, ok: response.ok, data, text };
  }

  /** The one-line reason of a failed answer (problem+json detail, else the status). */
  function reason(result) {
    const d = result.data;
    if (d && d.errors && d.errors.length) {
      return d.errors.map((e) => `${e.field} ${e.message}`).join("; ");
    }
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
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Where banners and the token prompt go: the page's main, else the top of the body. */
  function container() {
    return document.querySelector("main") || document.getElementById("page-top") || document.body;
  }

  // --- the token prompt ------------------------------------------------------------------

  function tokenPanel() {
    let panel = document.getElementById("token-panel");
    if (panel) return panel;
    const input = el("input", {
      id: "token-input", type: "password", autocomplete: "off", required: true,
      "aria-describedby": "token-help",
    });
    const form = el("form", { id: "token-form" },
      el("label", { for: "token-input" }, "API token"), " ", input, " ",
      el("button", { class: "primary", type: "submit" }, "Use token"));
    panel = el("section", { id: "token-panel", class: "panel notice", hidden: true,
      "aria-labelledby": "token-title" },
      el("h2", { id: "token-title" }, "This daemon asks for its API token"),
      el("p", { id: "token-message" }),
      form,
      el("p", { id: "token-help", class: "muted" },
        "Kept in this tab only (session storage) until the tab closes; never in the address or a cookie."));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      input.value = "";
      panel.hidden = true;
      for (const retry of retries.splice(0)) retry();
    });
    container().prepend(panel);
    return panel;
  }

  function askForToken(wasWrong) {
    const panel = tokenPanel();
    document.getElementById("token-message").textContent = wasWrong
      ? "The token this tab holds was refused. Enter the right one."
      : "Enter the token set in timerd's configuration (token or token_file).";
    if (wasWrong) setToken("");
    if (panel.hidden) {
      panel.hidden = false;
      document.getElementById("token-input").focus();
    }
  }

  /** Run `fn` again once a token has been entered. */
  function onToken(fn) {
    if (!retries.includes(fn)) retries.push(fn);
  }

  // --- live or stale -----------------------------------------------------------------------

  let lastGood = null;

  /** Show that the page's data is fresh (`ok`) or stale, with the reason, in a banner. */
  function setLive(ok, why) {
    const conn = document.getElementById("conn");
    let banner = document.getElementById("stale-banner");
    if (!banner) {
      banner = el("div", { id: "stale-banner", role: "alert", hidden: true });
      container().prepend(banner);
    }
    if (ok) {
      lastGood = new Date();
      document.body.classList.remove("stale");
      banner.hidden = true;
      if (conn) {
        conn.className = "ok";
        conn.textContent = "live · updated " + lastGood.toLocaleTimeString();
      }
      return;
    }
    document.body.classList.add("stale");
    banner.hidden = false;
    banner.textContent = `${why}. ` + (lastGood
      ? `What this page shows is from ${lastGood.toLocaleTimeString()} and is not updating; it retries by itself.`
      : "Nothing could be loaded yet; the page retries by itself.");
    if (conn) {
      conn.className = "bad";
      conn.textContent = "stale";
    }
  }

  // --- confirmation ------------------------------------------------------------------------

  /** Ask before a destructive action, in a modal dialog; resolve to true to go ahead. */
  function confirmAction(message, okLabel) {
    let dialog = document.getElementById("confirm-dialog");
    if (!dialog) {
      dialog = el("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-message" },
        el("form", { method: "dialog" },
          el("p", { id: "confirm-message" }),
          el("div", { class: "buttons" },
            el("button", { value: "no", id: "confirm-no", type: "submit" }, "Keep it"),
            " ",
            el("button", { value: "yes", id: "confirm-yes", class: "danger", type: "submit" }, "OK"))));
      document.body.append(dialog);
    }
    document.getElementById("confirm-message").textContent = message;
    document.getElementById("confirm-yes").textContent = okLabel;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
      dialog.showModal();
      document.getElementById("confirm-no").focus();
    });
  }

  let toastTimer = null;
  function toast(message) {
    let node = document.getElementById("toast");
    if (!node) {
      node = el("div", { id: "toast", role: "status", "aria-live": "polite" });
      document.body.append(node);
    }
    node.textContent = message;
    node.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => node.classList.remove("show"), 6000);
  }

  // --- time --------------------------------------------------------------------------------

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

  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

  /** An instant in this browser's time zone (the date only when it is not today). */
  function clockTime(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "-";
    const d = new Date(epochSeconds * 1000);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  /** An instant in this browser's time zone, with the zone's name. */
  function localTime(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "-";
    return new Date(epochSeconds * 1000).toLocaleString(undefined, { timeZoneName: "short" });
  }

  /** An instant in UTC, as RFC 3339 with milliseconds. */
  function utcTime(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "-";
    return new Date(epochSeconds * 1000).toISOString().replace(".000Z", "Z");
  }

  /** Label the page's time zone in any element with data-zone. */
  function labelZone() {
    for (const node of document.querySelectorAll("[data-zone]")) {
      node.textContent = `Times are in your browser's time zone, ${zone}, unless marked UTC.`;
    }
  }

  function badge(status) {
    return el("span", { class: "badge " + status }, status);
  }

  /** A link to a timer's own page, showing its whole id. */
  function timerLink(id) {
    return el("a", { class: "mono id", href: "/ui/timers/" + encodeURIComponent(id) }, id);
  }

  document.addEventListener("DOMContentLoaded", labelZone);
  return {
    api, reason, el, toast, duration, clockTime, localTime, utcTime, zone, badge, timerLink,
    getToken, setToken, onToken, setLive, confirmAction,
  };
})();
