// "Find timers" on the status page: search by id (or its start) or by part of the URL,
// filter by status, order by due time or last change, and page with the API's cursors.
"use strict";

(() => {
  const { api, reason, el, clockTime, localTime, badge, timerLink } = timerd;
  let query = null; // the filters of the pages being shown
  let cursors = [null]; // cursors[i] opens page i; the last entry is the page shown
  let nextCursor = null;

  function params(cursor) {
    const p = new URLSearchParams({ status: query.status, sort: query.sort, limit: "50" });
    if (query.q) p.set(query.in === "url" ? "url" : "id", query.q);
    if (cursor) p.set("cursor", cursor);
    return p;
  }

  function note(data) {
    const parts = [];
    if (data.order === "id") parts.push("Ids that start with the search, every status, in id order (oldest created first).");
    if (data.order === "changed") {
      parts.push(`Ordered by last change among the ${data.scanned.toLocaleString()} most recently due timers of this filter` +
        (data.complete ? " (all of them)." : `; the order of older ones is not looked at (at most ${data.scan_limit.toLocaleString()} per page).`));
    } else if (data.scanned !== null && data.scanned !== undefined) {
      parts.push(`A URL search reads at most ${data.scan_limit.toLocaleString()} timers per page: this page looked at ${data.scanned.toLocaleString()}` +
        (data.complete ? "." : "; more may match further on: Next page goes on."));
    }
    return parts.join(" ");
  }

  function row(t) {
    return el("tr", { "data-id": t.id, class: "timer" },
      el("td", {}, timerLink(t.id)),
      el("td", {}, badge(t.status)),
      el("td", { title: localTime(t.fire_at) }, clockTime(t.fire_at)),
      el("td", { class: "url mono", title: t.url }, t.url),
      el("td", { class: "num" }, t.attempts),
      el("td", { title: localTime(t.updated_at) }, clockTime(t.updated_at)));
  }

  async function show() {
    const cursor = cursors[cursors.length - 1];
    const noteNode = document.getElementById("find-note");
    let result;
    try {
      result = await api("GET", "/ui/timers.json?" + params(cursor));
    } catch {
      noteNode.textContent = "Cannot reach the daemon.";
      return;
    }
    if (!result.ok) {
      if (result.status === 401) timerd.onToken(show);
      noteNode.textContent = "Could not list timers: " + reason(result);
      return;
    }
    const data = result.data;
    nextCursor = data.next_cursor;
    document.querySelector("#find-results tbody").replaceChildren(...data.timers.map(row));
    document.getElementById("find-results-empty").hidden = data.timers.length > 0;
    noteNode.textContent = note(data);
    document.getElementById("find-page").textContent = `page ${cursors.length}`;
    document.getElementById("find-next").disabled = !nextCursor;
    document.getElementById("find-prev").disabled = cursors.length < 2;
    document.getElementById("find-first").disabled = cursors.length < 2;
    document.getElementById("find").dataset.loaded = String(cursors.length);
  }

  function readForm() {
    const form = document.getElementById("find-form");
    const q = form.elements.q.value.trim();
    let where = form.elements.in.value;
    // an id has only these characters: anything else can only be part of a URL
    if (q && where === "id" && !/^[A-Za-z0-9_-]+$/.test(q)) {
      where = "url";
      form.elements.in.value = "url";
    }
    return { q, in: where, status: form.elements.status.value, sort: form.elements.sort.value };
  }

  document.getElementById("find-form").addEventListener("submit", (event) => {
    event.preventDefault();
    query = readForm();
    cursors = [null];
    show();
  });
  document.getElementById("find-next").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    show();
  });
  document.getElementById("find-prev").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    show();
  });
  document.getElementById("find-first").addEventListener("click", () => {
    cursors = [null];
    show();
  });
  query = readForm();
  show();
})();
