// One timer's page (/ui/timers/<id>): what it is, when it fires, every kept attempt, the
// request its receiver gets, and the actions that apply (cancel asks first).
"use strict";

(() => {
  const { api, reason, el, toast, duration, localTime, utcTime, badge } = timerd;
  const POLL_MS = 2000;
  const id = decodeURIComponent(location.pathname.split("/").pop());
  let clockOffset = 0;
  let due = null; // when it fires next (daemon clock), while live
  let pollTimer = null;

  function set(idName, text) {
    document.getElementById(idName).textContent = text;
  }

  function left() {
    const node = document.getElementById("time-left");
    if (due === null) return;
    if (document.body.classList.contains("stale")) return;
    const seconds = due - (Date.now() / 1000 + clockOffset);
    node.textContent = seconds <= 0 ? "due now" : (seconds < 60 ? Math.ceil(seconds) + " s" : duration(seconds));
  }

  function render(view) {
    const t = view.timer;
    clockOffset = view.now - Date.now() / 1000;
    document.title = `timerd · ${t.id} (${t.status})`;
    document.getElementById("timer-status").replaceChildren(badge(t.status));
    set("due-local", localTime(t.fire_at));
    set("due-utc", utcTime(t.fire_at) + " (UTC)");
    const live = t.status === "pending" || t.status === "retrying";
    due = live ? (t.next_attempt_at ?? t.fire_at) : null;
    if (!live) set("time-left", `none: ${t.status}`);
    set("next-attempt", t.status === "retrying" ? localTime(t.next_attempt_at) : "-");
    set("url", t.url);
    set("created", localTime(t.created_at));
    set("updated", localTime(t.updated_at));
    set("fired", t.fired_at ? localTime(t.fired_at) : "-");
    set("attempt-count", `${t.attempts} (since it was last scheduled)`);
    set("last-error", t.last_error || "-");
    set("attempts-note", `(the last ${view.attempts_kept} are kept)`);
    document.querySelector("#attempts tbody").replaceChildren(...view.attempts.map((a) => el("tr", {},
      el("td", { class: "num" }, a.attempt),
      el("td", { title: utcTime(a.started_at) + " UTC" }, localTime(a.started_at)),
      el("td", { class: "num" }, duration(a.duration_ms / 1000)),
      el("td", { class: "num" }, a.status_code ?? "-"),
      el("td", { class: "error" }, a.error || "-"),
      el("td", {}, el("span", { class: "badge " + a.outcome }, a.outcome)))));
    document.getElementById("attempts-empty").hidden = view.attempts.length > 0;
    const hook = view.webhook;
    set("webhook-line", `${hook.method} ${hook.url}`);
    document.querySelector("#webhook-headers tbody").replaceChildren(...hook.headers.map((h) => el("tr", {},
      el("td", { class: "mono" }, h.name), el("td", { class: "mono" }, h.value), el("td", { class: "muted" }, h.note))));
    set("webhook-signing", hook.signed
      ? "This daemon signs its webhooks (signing_secret is set): verify webhook-signature with the same secret."
      : "This daemon does not sign its webhooks (no signing_secret); with one, webhook-id, webhook-timestamp and webhook-signature are added.");
    document.getElementById("fire").hidden = !view.actions.fire;
    document.getElementById("fire").textContent = t.status === "failed" ? "Fire again now" : "Fire now";
    document.getElementById("reschedule-form").hidden = !view.actions.reschedule;
    document.getElementById("cancel").hidden = !view.actions.cancel;
    document.body.dataset.status = t.status;
    document.body.dataset.loaded = "true";
    left();
  }

  async function refresh() {
    clearTimeout(pollTimer);
    try {
      const result = await api("GET", `/ui/timers/${encodeURIComponent(id)}.json`);
      if (result.ok) {
        document.getElementById("not-found").hidden = true;
        render(result.data);
        timerd.setLive(true);
      } else if (result.status === 404) {
        document.getElementById("not-found").hidden = false;
        document.getElementById("facts").hidden = true;
        document.body.dataset.loaded = "true";
        timerd.setLive(true);
        return; // nothing to poll
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

  /** "1h30m", "45s", "2d", "1.5h" (as `timerd add --in` takes) to seconds; NaN if not one. */
  function parseDuration(text) {
    const re = /(\d+(?:\.\d+)?)\s*([dhms])/g;
    const units = { d: 86400, h: 3600, m: 60, s: 1 };
    let total = 0;
    let consumed = "";
    for (const m of text.trim().matchAll(re)) {
      total += Number(m[1]) * units[m[2]];
      consumed += m[0];
    }
    return consumed.replace(/\s/g, "") === text.replace(/\s/g, "") && consumed ? total : NaN;
  }

  async function after(result, done) {
    toast(result.ok ? done : `Could not: ${reason(result)}`);
    await refresh();
  }

  document.getElementById("copy-id").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(id);
      toast("Copied " + id);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("timer-id"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      toast("Selected the id: press Ctrl+C to copy it");
    }
  });
  document.getElementById("fire").addEventListener("click", async () => {
    after(await api("POST", `/timers/${encodeURIComponent(id)}/fire`), "Firing now");
  });
  document.getElementById("cancel").addEventListener("click", async () => {
    if (!(await timerd.confirmAction(`Cancel timer ${id}? It will never fire.`, "Cancel timer"))) return;
    after(await api("DELETE", `/timers/${encodeURIComponent(id)}`), "Cancelled");
  });
  document.getElementById("reschedule-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("reschedule-in");
    const seconds = parseDuration(input.value);
    if (!isFinite(seconds)) {
      toast("Write a duration like 10m, 1h30m or 45s");
      return;
    }
    const when = duration(seconds);
    if (!(await timerd.confirmAction(`Move timer ${id} to fire in ${when}? Its attempt count starts again.`, "Reschedule"))) return;
    after(await api("PATCH", `/timers/${encodeURIComponent(id)}`, { seconds }), `Rescheduled to fire in ${when}`);
  });
  set("timer-id", id);
  setInterval(left, 250);
  refresh();
})();
