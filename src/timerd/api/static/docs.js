// The API docs: renders /openapi.json and lets a person try each operation against this daemon.
"use strict";

(() => {
  const { api, el, duration } = timerd;
  const METHODS = ["get", "post", "put", "patch", "delete"];
  let doc = null;

  function resolve(node, seen = new Set()) {
    if (!node || typeof node !== "object" || !node.$ref) return node;
    if (seen.has(node.$ref)) return {};
    seen.add(node.$ref);
    let target = doc;
    for (const part of node.$ref.replace(/^#\//, "").split("/")) target = target?.[part];
    return resolve(target || {}, seen);
  }

  function refName(node) {
    return node && node.$ref ? node.$ref.split("/").pop() : null;
  }

  // A readable, fully expanded schema (refs inlined up to a depth).
  function expand(node, depth = 0) {
    if (Array.isArray(node)) return node.map((n) => expand(n, depth));
    if (!node || typeof node !== "object") return node;
    if (node.$ref) return depth > 4 ? { $ref: node.$ref } : expand(resolve(node), depth + 1);
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = expand(v, depth);
    return out;
  }

  // A body that passes the schema, to start from.
  function example(schema, name) {
    const s = resolve(schema) || {};
    if (s.example !== undefined) return s.example;
    if (s.enum) return s.enum[0];
    if (s.oneOf || s.anyOf) return example((s.oneOf || s.anyOf)[0], name);
    if (s.type === "object" || s.properties) {
      const out = {};
      for (const [key, prop] of Object.entries(s.properties || {})) {
        const p = resolve(prop) || {};
        const required = (s.required || []).includes(key);
        if (required || (!p.oneOf && !p.anyOf && p.type !== "object")) out[key] = example(p, key);
      }
      return out;
    }
    if (s.type === "array") return [example(s.items || {}, name)];
    if (s.type === "integer") return s.minimum ?? 0;
    if (s.type === "number") return name === "seconds" ? 30 : s.minimum ?? 0;
    if (s.type === "boolean") return false;
    if (s.format === "uri") return "https://example.com/hook";
    if (s.format === "date-time") return new Date(Date.now() + 3600e3).toISOString();
    return "";
  }

  function schemaBlock(schema) {
    const name = refName(schema);
    return el("div", {},
      name ? el("div", { class: "muted mono" }, name) : null,
      el("pre", { class: "schema" }, JSON.stringify(expand(schema), null, 2)));
  }

  function paramsTable(params) {
    return el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "schema"),
        el("th", {}, "description"))),
      el("tbody", {}, ...params.map((p) => el("tr", {},
        el("td", { class: "mono" }, p.name + (p.required ? " *" : "")),
        el("td", {}, p.in),
        el("td", { class: "mono" }, JSON.stringify(expand(p.schema || {}))),
        el("td", {}, p.description || "")))));
  }

  function responsesList(responses) {
    return el("table", {},
      el("tbody", {}, ...Object.entries(responses || {}).map(([code, r]) => {
        const resolved = resolve(r) || {};
        const content = resolved.content || {};
        const types = Object.keys(content);
        const schema = types.length ? content[types[0]].schema : null;
        return el("tr", {},
          el("td", { class: "mono" }, code),
          el("td", {}, resolved.description || refName(r) || ""),
          el("td", { class: "mono muted" }, types.join(", ")),
          el("td", { class: "mono" }, schema ? refName(schema) || schema.type || "" : ""));
      })));
  }

  function tryIt(path, method, params, requestBody) {
    const form = el("form", { class: "try" });
    const inputs = [];
    for (const p of params) {
      const input = el("input", { name: p.name, placeholder: p.required ? "required" : "optional" });
      inputs.push([p, input]);
      form.append(el("div", { class: "row" }, el("label", {}, `${p.name} (${p.in})`), input));
    }
    let bodyBox = null;
    const bodySchema = requestBody && resolve(requestBody).content?.["application/json"]?.schema;
    if (bodySchema) {
      bodyBox = el("textarea", { spellcheck: "false", "aria-label": "request body" });
      bodyBox.value = JSON.stringify(example(bodySchema), null, 2);
      form.append(el("h3", {}, "Body (application/json)"), bodyBox);
    }
    const statusLine = el("div", { class: "status-line" });
    const out = el("pre", { class: "response", hidden: true });
    form.append(el("div", { class: "row" },
      el("button", { class: "primary send", type: "submit" }, "Send"),
      el("span", { class: "muted mono" }, `${method.toUpperCase()} ${path}`)), statusLine, out);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let url = path;
      const query = new URLSearchParams();
      const headers = {};
      for (const [p, input] of inputs) {
        const value = input.value;
        if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value));
        else if (value && p.in === "query") query.set(p.name, value);
        else if (value && p.in === "header") headers[p.name] = value;
      }
      if ([...query].length) url += "?" + query;
      const started = performance.now();
      statusLine.textContent = "…";
      try {
        const result = await api(method.toUpperCase(), url, bodyBox ? bodyBox.value : null, headers);
        const took = duration((performance.now() - started) / 1000);
        statusLine.className = "status-line " + (result.ok ? "ok" : "bad");
        statusLine.textContent = `${result.status} · ${result.headers.get("content-type") || ""} · ${took}`;
        const location = result.headers.get("location");
        out.textContent = (location ? `Location: ${location}\n\n` : "") +
          (result.data !== null ? JSON.stringify(result.data, null, 2) : result.text);
      } catch (error) {
        statusLine.className = "status-line bad";
        statusLine.textContent = "request failed: " + error;
        out.textContent = "";
      }
      out.hidden = false;
    });
    return form;
  }

  function operation(path, method, item) {
    const op = item[method];
    const params = [...(item.parameters || []), ...(op.parameters || [])].map((p) => resolve(p));
    const body = el("div", { class: "body" });
    if (op.description) body.append(el("p", {}, op.description));
    if (params.length) body.append(el("h3", {}, "Parameters"), paramsTable(params));
    const requestSchema = op.requestBody && resolve(op.requestBody).content?.["application/json"]?.schema;
    if (requestSchema) body.append(el("h3", {}, "Request body"), schemaBlock(requestSchema));
    body.append(el("h3", {}, "Responses"), responsesList(op.responses));
    body.append(el("h3", {}, "Try it"), tryIt(path, method, params, op.requestBody));
    return el("details", { class: "op", id: `${method}-${path}`, "data-method": method, "data-path": path },
      el("summary", {},
        el("span", { class: "method " + method }, method.toUpperCase()),
        el("span", { class: "path" }, path),
        el("span", { class: "muted" }, op.summary || "")),
      body);
  }

  async function load() {
    const result = await api("GET", "/openapi.json");
    if (!result.ok || !result.data) {
      document.getElementById("description").textContent =
        "Could not load /openapi.json: " + timerd.reason(result);
      return;
    }
    doc = result.data;
    document.getElementById("version").textContent = `v${doc.info.version} · OpenAPI ${doc.openapi}`;
    document.getElementById("description").textContent = doc.info.description || "";
    const ops = document.getElementById("operations");
    const pages = document.getElementById("pages");
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const isUi = (item[method].tags || []).includes("ui");
        (isUi ? pages : ops).append(operation(path, method, item));
      }
    }
    document.getElementById("pages-title").hidden = !pages.children.length;
    if (location.hash.length > 1) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.open = true;
    }
    document.body.dataset.loaded = "true";
  }

  timerd.wireTokenPanel(() => location.reload());
  load();
})();
