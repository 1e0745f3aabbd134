// The docs page: Swagger UI (vendored, see static/vendor/README.md) on /openapi.json.
// The document is fetched through timerd.api, so a daemon with a token asks for it once;
// "Try it out" requests carry the same token and, being same-origin, the page's own Origin.
"use strict";

(() => {
  function label(root) {
    // Swagger UI's request-body editor has no label; a screen reader would announce nothing
    for (const area of root.querySelectorAll("textarea:not([aria-label])")) {
      area.setAttribute("aria-label", area.closest(".body-param") ? "Request body (JSON)" : "Value");
    }
    // nor have its lists: a request body's named examples, a parameter's values
    for (const list of root.querySelectorAll("select:not([aria-label])")) {
      const param = list.closest("tr[data-param-name]");
      list.setAttribute("aria-label", param ? param.dataset.paramName : "Example");
    }
    // a wide example scrolls sideways: keyboard users must be able to reach it
    for (const pre of root.querySelectorAll("pre.microlight:not([tabindex])")) {
      pre.setAttribute("tabindex", "0");
    }
  }

  async function start() {
    let result;
    try {
      result = await timerd.api("GET", "/openapi.json");
    } catch {
      timerd.setLive(false, "Cannot reach the daemon");
      setTimeout(start, 3000);
      return;
    }
    if (!result.ok) {
      if (result.status === 401) timerd.onToken(start);
      timerd.setLive(false, "The daemon answered " + timerd.reason(result));
      return;
    }
    timerd.setLive(true);
    SwaggerUIBundle({
      spec: result.data,
      dom_id: "#swagger",
      deepLinking: false, // its deep links put a link inside each operation's toggle button
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      tryItOutEnabled: false,
      requestInterceptor: (request) => {
        const token = timerd.getToken();
        if (token && !request.headers.Authorization) request.headers.Authorization = "Bearer " + token;
        return request;
      },
      onComplete: () => {
        document.body.dataset.loaded = "true";
      },
    });
    new MutationObserver(() => label(document.getElementById("swagger")))
      .observe(document.getElementById("swagger"), { childList: true, subtree: true });
  }

  start();
})();
