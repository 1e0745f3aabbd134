// "Failures" on the status page: failed timers grouped by host or by error, with "fire again"
// for one timer, for the ones ticked, and for a whole group (one request, confirmed).
"use strict";

(() => {
  const { api, reason, el, toast, clockTime, localTime, timerLink } = timerd;
  const REFRESH_MS = 10000;
  let timer = null;

  async function fireAgain(body, what) {
    const result = await api("POST", "/ui/failures/fire", body);
    if (!result.ok) {
      toast(`Could not fire again ${what}: ${reason(result)}`);
    } else {
      const d = result.data;
      const skipped = d.skipped.length ? `; ${d.skipped.length} skipped (${d.skipped[0].reason})` : "";
      toast(`Fired again ${d.fired} of ${d.asked} ${what}${skipped}`);
    }
    await load(false);
    if (window.timerdStatus) window.timerdStatus.refresh();
  }

  function plural(n, one, many) {
    return `${n.toLocaleString()} ${n === 1 ? one : many}`;
  }

  function groupBlock(group, by, index) {
    const body = el("tbody");
    const selectedButton = el("button", { type: "button", class: "fire-selected", disabled: true },
      "Fire again selected");
    const boxes = [];
    const updateSelected = () => {
      const n = boxes.filter((b) => b.checked).length;
      selectedButton.disabled = n === 0;
      selectedButton.textContent = n ? `Fire again ${plural(n, "selected timer", "selected timers")}` : "Fire again selected";
    };
    for (const t of group.timers) {
      const box = el("input", { type: "checkbox", class: "pick", "data-id": t.id,
        "aria-label": `Select ${t.id}` });
      box.addEventListener("change", updateSelected);
      boxes.push(box);
      body.append(el("tr", { "data-id": t.id, class: "timer" },
        el("td", {}, box),
        el("td", {}, timerLink(t.id)),
        el("td", { class: "url mono", title: t.url }, t.url),
        el("td", { title: localTime(t.fire_at) }, clockTime(t.fire_at)),
        el("td", { class: "num" }, t.attempts),
        el("td", { class: "error" }, t.last_error || "-"),
        el("td", { class: "actions" }, el("button", {
          type: "button", class: "fire-one", "aria-label": `Fire again ${t.id}`,
          onclick: () => fireAgain({ ids: [t.id] }, "timer " + t.id),
        }, "fire again"))));
    }
    selectedButton.addEventListener("click", async () => {
      const ids = boxes.filter((b) => b.checked).map((b) => b.dataset.id);
      if (!ids.length) return;
      if (!(await timerd.confirmAction(`Fire again ${plural(ids.length, "failed timer", "failed timers")} now?`,
        `Fire again ${ids.length}`))) return;
      fireAgain({ ids }, plural(ids.length, "timer", "timers"));
    });
    const allButton = el("button", { type: "button", class: "fire-group primary" },
      `Fire again all ${group.count.toLocaleString()}`);
    allButton.addEventListener("click", async () => {
      const what = `${plural(group.count, "failed timer", "failed timers")} of ${by} “${group.key}”`;
      if (!(await timerd.confirmAction(`Fire again ${what} now? Each gets a fresh attempt count.`,
        `Fire again ${group.count}`))) return;
      fireAgain({ group: { by, key: group.key } }, what);
    });
    const shown = group.timers.length < group.count
      ? el("p", { class: "muted small" }, `Showing the ${group.timers.length} most recently due of ${group.count}.`)
      : null;
    return el("details", { class: "group", "data-key": group.key, open: index === 0 ? true : null },
      el("summary", {},
        el("span", { class: "group-key mono" }, group.key), " ",
        el("span", { class: "count" }, plural(group.count, "failed timer", "failed timers")), " ",
        el("span", { class: "muted" }, "latest due " + clockTime(group.latest_fire_at))),
      el("div", { class: "group-actions" }, allButton, " ", selectedButton),
      shown,
      el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": `Failed timers of ${group.key}` },
      el("table", {},
        el("thead", {}, el("tr", {},
          el("th", { scope: "col" }, el("span", { class: "sr-only" }, "select")),
          el("th", { scope: "col" }, "id"), el("th", { scope: "col" }, "url"),
          el("th", { scope: "col" }, "due"), el("th", { scope: "col", class: "num" }, "attempts"),
          el("th", { scope: "col" }, "last error"),
          el("th", { scope: "col" }, el("span", { class: "sr-only" }, "actions")))),
        body)));
  }

  async function load(auto) {
    clearTimeout(timer);
    const box0 = document.getElementById("failure-groups");
    if (auto === true && box0.querySelector("input.pick:checked")) {
      timer = setTimeout(() => load(true), REFRESH_MS); // keep the person's selection
      return;
    }
    const by = document.getElementById("failures-by").value;
    const note = document.getElementById("failures-note");
    const box = document.getElementById("failure-groups");
    try {
      const result = await api("GET", "/ui/failures.json?by=" + encodeURIComponent(by));
      if (result.ok) {
        const d = result.data;
        const open = new Set([...box.querySelectorAll("details[open]")].map((n) => n.dataset.key));
        box.replaceChildren(...d.groups.map((g, i) => groupBlock(g, by, i)));
        if (open.size) {
          for (const node of box.querySelectorAll("details")) node.open = open.has(node.dataset.key);
        }
        note.textContent = d.groups.length
          ? `Grouped by ${by} over the ${plural(d.scanned, "most recently due failed timer", "most recently due failed timers")}` +
            (d.scanned >= d.scan_limit ? ` (at most ${d.scan_limit.toLocaleString()} are looked at; older failures are not grouped).` : ".")
          : "No failed timers.";
        box.dataset.loaded = "true";
      } else if (result.status === 401) {
        timerd.onToken(() => load(false));
      } else {
        note.textContent = "Could not load failures: " + reason(result);
      }
    } catch {
      note.textContent = "Cannot reach the daemon.";
    }
    timer = setTimeout(() => load(true), REFRESH_MS);
  }

  document.getElementById("failures-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load(false);
  });
  document.getElementById("failures-by").addEventListener("change", () => load(false));
  load(false);
})();
