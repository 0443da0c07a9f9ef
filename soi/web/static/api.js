/* Calls to Soi's JSON API with the browser session: the CSRF token (cookie soi_csrf)
 * goes back as X-CSRF-Token on every request that changes something; a 401 sends the
 * person to the sign-in page and back here afterwards. */
(function () {
  "use strict";

  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

  function cookie(name) {
    const prefix = `${name}=`;
    for (const part of document.cookie.split(";")) {
      const item = part.trim();
      if (item.startsWith(prefix)) return decodeURIComponent(item.slice(prefix.length));
    }
    return "";
  }

  function csrfToken() {
    return cookie("soi_csrf") || window.sessionStorage.getItem("soi.csrf") || "";
  }

  function toSignIn(reason) {
    const next = window.location.pathname + window.location.search;
    const query = new URLSearchParams({ next });
    if (reason) query.set("reason", reason);
    window.location.assign(`/ui/login?${query.toString()}`);
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (!SAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && path !== "/auth/login") {
      toSignIn("expired");
      throw new ApiError(401, { detail: "signed out" });
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) throw new ApiError(response.status, data);
    return { data, response };
  }

  /* element("tr", { className: "x", text: "…", title: "…" }, child, "text", …): a DOM
   * element with its attributes and children; text is always set as text, never HTML. */
  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  window.SoiDom = { element };

  window.SoiApi = {
    ApiError,
    csrfToken,
    toSignIn,
    get: (path) => request("GET", path).then((reply) => reply.data),
    post: (path, body) => request("POST", path, body).then((reply) => reply.data),
    request,
  };
})();
