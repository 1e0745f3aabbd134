// The status page: polls /ui/summary.json, ticks countdowns locally, fires and cancels timers.
"use strict";

(() => {
  const { api, reason, el, toast, duration, clockTime } = timerd;
  const POLL_MS = 2000;
  let clockOffset = 0; // daemon clock minus this browser's clock, seconds
  let pollTimer = null;

  const daemonNow = () => Date.now() / 1000 + clockOffset;

  function shortId(id) {
    return el("span", { class: "mono", title: id }, id.length > 12 ? id.slice(0, 10) + "…" : id);
  }

  function urlCell(url) {
    return el("td", { class: "url mono", title: url }, url);
  }

  function badge(status) {
    return el("span", { class: "badge " + status }, status);
  }

  function actionButtons(timer) {
    const buttons = [];
    if (timer.status !== "fired" && timer.status !== "cancelled") {
      buttons.push(
        el("button", { class: "fire", type: "button", "data-action": "fire", "data-id": timer.id },
          timer.status === "failed" ? "fire again" : "fire now"),
        " ",
        el("button", { class: "cancel danger", type: "button", "data-action": "cancel", "data-id": timer.id },
          "cancel"),
      );
    }
    return el("td", { class: "actions" }, ...buttons);
  }

  function fill(tableId, rows) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren(...rows);
    document.getElementById(`${tableId}-empty`).hidden = rows.length > 0;
  }

  function countdownText(due) {
    const left = due - daemonNow();
    if (left <= 0) return "due now";
    return left < 60 ? Math.ceil(left) + "s" : duration(left);
  }

  function renderNext(timers) {
    fill("next", timers.map((t) => {
      const due = t.next_attempt_at ?? t.fire_at;
      return el("tr", { "data-id": t.id, class: "timer" },
        el("td", {}, shortId(t.id)),
        urlCell(t.url),
        el("td", {}, clockTime(due)),
        el("td", { class: "countdown", "data-due": due }, countdownText(due)),
        el("td", { class: "num" }, t.attempts),
        el("td", {}, badge(t.status)),
        actionButtons(t));
    }));
  }

  function renderFailed(timers) {
    fill("recent-failed", timers.map((t) => el("tr", { "data-id": t.id, class: "timer" },
      el("td", {}, shortId(t.id)),
      urlCell(t.url),
      el("td", {}, clockTime(t.fire_at)),
      el("td", { class: "num" }, t.attempts),
      el("td", { class: "num" }, t.last_status_code ?? "-"),
      el("td", { class: "error" }, t.last_error || "-"),
      actionButtons(t))));
  }

  function renderFired(timers) {
    fill("recent-fired", timers.map((t) => el("tr", { "data-id": t.id, class: "timer" },
      el("td", {}, shortId(t.id)),
      urlCell(t.url),
      el("td", {}, clockTime(t.fire_at)),
      el("td", {}, clockTime(t.fired_at)),
      el("td", { class: "num" }, t.fired_at ? duration(Math.max(0, t.fired_at - t.fire_at)) : "-"),
      el("td", { class: "num" }, t.attempts),
      el("td", { class: "num" }, t.last_status_code ?? "-"))));
  }

  function tick() {
    for (const cell of document.querySelectorAll("td.countdown")) {
      cell.textContent = countdownText(Number(cell.dataset.due));
    }
  }

  // The lateness histogram as bars, one per bucket (observations in that bucket, not cumulative).
  function renderLateness(lateness) {
    const box = document.getElementById("lateness-chart");
    const text = document.getElementById("lateness-text");
    if (!lateness || !lateness.count) {
      box.replaceChildren(el("p", { class: "empty" }, "No deliveries yet."));
      text.textContent = "";
      return;
    }
    const buckets = lateness.buckets;
    // past the top bucket there is no estimate, only a lower bound
    const topBound = buckets.length > 1 ? buckets[buckets.length - 2][0] : null;
    const quantile = (v) => (v === "+Inf" ? `over ${duration(topBound)}` : duration(v));
    text.textContent = `p50 ${quantile(lateness.p50)} · p99 ${quantile(lateness.p99)} · ` +
      `${lateness.count} first attempts`;
    const counts = buckets.map(([, c], i) => c - (i ? buckets[i - 1][1] : 0));
    const max = Math.max(...counts, 1);
    const W = 520, H = 150, left = 30, bottom = 26, top = 8;
    const slot = (W - left) / counts.length;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "fire lateness histogram");
    const add = (tag, attrs, content) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (content !== undefined) node.textContent = content;
      svg.append(node);
      return node;
    };
    const plotH = H - bottom - top;
    add("line", { x1: left, x2: W, y1: top + plotH, y2: top + plotH, class: "grid" });
    add("text", { x: left - 4, y: top + 8, "text-anchor": "end", class: "axis" }, String(max));
    add("text", { x: left - 4, y: top + plotH, "text-anchor": "end", class: "axis" }, "0");
    counts.forEach((count, i) => {
      const h = (count / max) * plotH;
      const x = left + i * slot + 2;
      const le = buckets[i][0];
      const label = le === "+Inf" ? "more" : "≤" + duration(le).replace(" ", "");
      const bar = add("rect", {
        x, y: top + plotH - h, width: Math.max(1, slot - 4), height: h, class: "bar",
      });
      const title = document.createElementNS(ns, "title");
      title.textContent = `${count} first attempts ${le === "+Inf" ? "later" : "within " + duration(le)}`;
      bar.append(title);
      if (i % 2 === 0 || counts.length < 10) {
        add("text", { x: x + slot / 2 - 2, y: H - 8, "text-anchor": "middle", class: "axis" }, label);
      }
    });
    box.replaceChildren(svg);
  }

  function render(summary) {
    clockOffset = summary.now - Date.now() / 1000;
    document.getElementById("version").textContent = "v" + summary.version;
    for (const node of document.querySelectorAll("[data-count]")) {
      node.textContent = summary.counts[node.dataset.count] ?? 0;
    }
    const f = summary.figures;
    document.getElementById("in-flight").textContent = f.in_flight;
    document.getElementById("created").textContent = f.created;
    document.getElementById("delivered").textContent = f.deliveries.delivered;
    document.getElementById("retried").textContent = f.deliveries.retried;
    document.getElementById("failed-total").textContent = f.deliveries.failed;
    document.getElementById("heap").textContent = f.heap_size;
    renderNext(summary.next);
    renderFailed(summary.recent_failed);
    renderFired(summary.recent_fired);
    renderLateness(f.lateness_s);
    document.body.dataset.loaded = "true";
  }

  function setConn(ok, message) {
    const node = document.getElementById("conn");
    node.className = ok ? "ok" : "bad";
    node.textContent = message;
  }

  async function refresh() {
    clearTimeout(pollTimer);
    try {
      const result = await api("GET", "/ui/summary.json");
      if (result.ok && result.data) {
        render(result.data);
        setConn(true, "live · updated " + new Date().toLocaleTimeString());
      } else {
        setConn(false, reason(result));
      }
    } catch (error) {
      setConn(false, "daemon unreachable");
    }
    pollTimer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
  }

  async function act(action, id, button) {
    if (action === "cancel" && !window.confirm(`Cancel timer ${id}? It will never fire.`)) return;
    button.disabled = true;
    const encoded = encodeURIComponent(id);
    const result = action === "cancel"
      ? await api("DELETE", `/timers/${encoded}`)
      : await api("POST", `/timers/${encoded}/fire`);
    toast(result.ok ? `${action === "cancel" ? "Cancelled" : "Firing"} ${id}` : `Could not ${action} ${id}: ${reason(result)}`);
    await refresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button.dataset.action, button.dataset.id, button);
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  timerd.wireTokenPanel(refresh);
  setInterval(tick, 250);
  refresh();
})();
