// The status page's overview: polls /ui/summary.json, ticks countdowns locally, fires and
// cancels timers (cancel asks first). Find and Failures live in browse.js and failures.js.
"use strict";

(() => {
  const { api, reason, el, toast, duration, clockTime, localTime, badge, timerLink } = timerd;
  const POLL_MS = 2000;
  let clockOffset = 0; // daemon clock minus this browser's clock, seconds
  let pollTimer = null;

  const daemonNow = () => Date.now() / 1000 + clockOffset;

  function urlCell(url) {
    return el("td", { class: "url mono", title: url }, url);
  }

  function actionButtons(timer) {
    const buttons = [];
    if (timer.status !== "fired" && timer.status !== "cancelled") {
      buttons.push(
        el("button", { class: "fire", type: "button", "data-action": "fire", "data-id": timer.id,
          "aria-label": `${timer.status === "failed" ? "Fire again" : "Fire now"} ${timer.id}` },
          timer.status === "failed" ? "fire again" : "fire now"),
        " ",
        el("button", { class: "cancel danger", type: "button", "data-action": "cancel", "data-id": timer.id,
          "aria-label": `Cancel ${timer.id}` }, "cancel"),
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
        el("td", {}, timerLink(t.id)),
        urlCell(t.url),
        el("td", { title: localTime(due) }, clockTime(due)),
        el("td", { class: "countdown", "data-due": due }, countdownText(due)),
        el("td", { class: "num" }, t.attempts),
        el("td", {}, badge(t.status)),
        actionButtons(t));
    }));
  }

  function renderFailed(timers) {
    fill("recent-failed", timers.map((t) => el("tr", { "data-id": t.id, class: "timer" },
      el("td", {}, timerLink(t.id)),
      urlCell(t.url),
      el("td", { title: localTime(t.fire_at) }, clockTime(t.fire_at)),
      el("td", { class: "num" }, t.attempts),
      el("td", { class: "num" }, t.last_status_code ?? "-"),
      el("td", { class: "error" }, t.last_error || "-"),
      actionButtons(t))));
  }

  function renderFired(timers) {
    fill("recent-fired", timers.map((t) => el("tr", { "data-id": t.id, class: "timer" },
      el("td", {}, timerLink(t.id)),
      urlCell(t.url),
      el("td", { title: localTime(t.fire_at) }, clockTime(t.fire_at)),
      el("td", { title: localTime(t.fired_at) }, clockTime(t.fired_at)),
      el("td", { class: "num" }, t.fired_at ? duration(Math.max(0, t.fired_at - t.fire_at)) : "-"),
      el("td", { class: "num" }, t.attempts),
      el("td", { class: "num" }, t.last_status_code ?? "-"))));
  }

  function tick() {
    if (document.body.classList.contains("stale")) return; // frozen data must not look live
    for (const cell of document.querySelectorAll("td.countdown")) {
      cell.textContent = countdownText(Number(cell.dataset.due));
    }
  }

  /** The highest finite bucket bound: a quantile past it is only known to be beyond it. */
  function topBound(histogram) {
    const finite = histogram.buckets.map(([le]) => le).filter((le) => le !== "+Inf");
    return finite.length ? finite[finite.length - 1] : null;
  }

  function quantileText(value, histogram) {
    if (value === null || value === undefined) return "-";
    if (value === "+Inf" || value === Infinity) return "over " + duration(topBound(histogram));
    return duration(value);
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
    text.textContent = `Median ${quantileText(lateness.p50, lateness)}, ` +
      `99th percentile ${quantileText(lateness.p99, lateness)}, over ${lateness.count} first attempts.`;
    const buckets = lateness.buckets;
    const counts = buckets.map(([, c], i) => c - (i ? buckets[i - 1][1] : 0));
    const max = Math.max(...counts, 1);
    const W = 520, H = 150, left = 30, bottom = 26, top = 8;
    const slot = (W - left) / counts.length;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `Fire lateness histogram: ${text.textContent}`);
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

  function renderOverdue(overdue) {
    const node = document.getElementById("overdue-text");
    if (!overdue || !overdue.count) {
      node.hidden = true;
      return;
    }
    node.hidden = false;
    node.textContent = `Overdue (overdue_s, ${overdue.count} observations): median ` +
      `${quantileText(overdue.p50, overdue)}, 99th percentile ${quantileText(overdue.p99, overdue)}.`;
  }

  // Only when the timer set is shared (PostgreSQL): who serves it, and how recently each spoke.
  function renderNodes(nodes) {
    const panel = document.getElementById("nodes-panel");
    panel.hidden = !nodes;
    if (!nodes) return;
    const rows = nodes.live.map((n) => el("tr", { "data-node": n.id },
      el("td", {}, n.id === nodes.this ? `${n.id} (this node)` : n.id),
      el("td", {}, n.version),
      el("td", {}, localTime(n.started_at)),
      el("td", {}, `${duration(Math.max(0, serverNow() - n.last_seen_at))} ago`),
    ));
    document.getElementById("nodes").replaceChildren(...rows);
  }

  function serverNow() {
    return Date.now() / 1000 + clockOffset;
  }

  function render(summary) {
    clockOffset = summary.now - Date.now() / 1000;
    document.getElementById("version").textContent = "v" + summary.version;
    if (summary.started_at) {
      document.getElementById("started").textContent = "(at " + localTime(summary.started_at) + ")";
    }
    document.getElementById("counts-note").textContent =
      `(every timer kept, by status; counted at most ${summary.counts_every_s ?? 2} s ago)`;
    for (const node of document.querySelectorAll("[data-count]")) {
      node.textContent = (summary.counts[node.dataset.count] ?? 0).toLocaleString();
    }
    const f = summary.figures;
    document.getElementById("in-flight").textContent = f.in_flight;
    document.getElementById("created").textContent = f.created.toLocaleString();
    document.getElementById("delivered").textContent = f.deliveries.delivered.toLocaleString();
    document.getElementById("retried").textContent = f.deliveries.retried.toLocaleString();
    document.getElementById("failed-total").textContent = f.deliveries.failed.toLocaleString();
    document.getElementById("heap").textContent = f.heap_size.toLocaleString();
    renderNext(summary.next);
    renderFailed(summary.recent_failed);
    renderFired(summary.recent_fired);
    renderLateness(f.lateness_s);
    renderOverdue(f.overdue_s);
    renderNodes(summary.nodes);
    document.body.dataset.loaded = "true";
  }

  async function refresh() {
    clearTimeout(pollTimer);
    try {
      const result = await api("GET", "/ui/summary.json");
      if (result.ok && result.data) {
        render(result.data);
        timerd.setLive(true);
      } else if (result.status === 401) {
        timerd.onToken(refresh);
        timerd.setLive(false, "This daemon asks for a token");
      } else {
        timerd.setLive(false, "The daemon answered " + reason(result));
      }
    } catch {
      timerd.setLive(false, "Cannot reach the daemon");
    }
    pollTimer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
  }

  async function act(action, id, button) {
    if (action === "cancel" &&
        !(await timerd.confirmAction(`Cancel timer ${id}? It will never fire.`, "Cancel timer"))) {
      return;
    }
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
  setInterval(tick, 250);
  refresh();
  window.timerdStatus = { refresh };
})();
