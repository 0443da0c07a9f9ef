/* The audit log page (administrators): filters kept in the page's address so a view can
 * be shared, the events newest first from GET /admin/audit, older pages on demand
 * (before_id), and a CSV file of the rows shown. */
(function () {
  "use strict";
  const { t, has, lang, apply, onChange, bindSwitch } = window.SoiI18n;
  const { get, request, ApiError } = window.SoiApi;

  /** Actions Soi records; others (a new pipeline's ``<name>.result``…) show their code. */
  const ACTIONS = [
    "study.read", "study.list", "result.read", "document.read",
    "dicomweb.search", "dicomweb.retrieve", "dicomweb.store", "dimse.store", "dimse.associate",
    "upload.create", "upload.keep", "upload.receipt", "upload.terminate",
    "cxr.result", "delivery.sent", "delivery.retrying", "delivery.dead",
    "auth.login", "auth.logout", "auth.csrf", "auth.token.create", "auth.token.revoke",
    "user.add", "user.enable", "user.disable", "user.password", "audit.read",
  ];
  const FILTERS = ["patient", "study", "actor", "action", "limit"];
  const DEFAULT_LIMIT = "100";
  const MAX_LIMIT = 1000;
  const UID = /^[0-9.]{1,64}$/;
  const DETAIL_PAIRS = 6;
  const DETAIL_TEXT = 48;
  const UID_TAIL = 10;
  const CSV_COLUMNS = [
    "id", "occurred_at", "actor", "actor_kind", "action", "outcome", "source_address",
    "facility_id", "patient_id", "study_instance_uid", "sop_instance_uid", "detail",
  ];

  const state = {
    me: null,
    filters: {},
    items: [],
    patientIds: null,
    next: null,
    loading: false,
    seq: 0,
    error: "",
    forbidden: false,
  };

  const $ = (id) => document.getElementById(id);

  const element = window.SoiDom.element;

  // -- filters and the address ----------------------------------------------

  function cleanLimit(value) {
    const number = Number(value);
    return Number.isInteger(number) && number >= 1 && number <= MAX_LIMIT ? String(number) : "";
  }

  function filtersFrom(search) {
    const query = new URLSearchParams(search);
    const filters = {};
    for (const name of FILTERS) {
      let value = (query.get(name) || "").trim();
      if (name === "limit") value = cleanLimit(value) === DEFAULT_LIMIT ? "" : cleanLimit(value);
      if (value) filters[name] = value;
    }
    return filters;
  }

  function queryOf(filters) {
    const query = new URLSearchParams();
    for (const name of FILTERS) if (filters[name]) query.set(name, filters[name]);
    const text = query.toString();
    return text ? `?${text}` : "";
  }

  function actionLabel(code) {
    return has(`action.${code}`) ? t(`action.${code}`) : code;
  }

  function fillActions(chosen) {
    const select = $("f-action");
    const codes = ACTIONS.slice();
    if (chosen && !codes.includes(chosen)) codes.push(chosen);
    select.replaceChildren(
      element("option", { value: "" }, t("audit.anyAction")),
      ...codes.map((code) =>
        element("option", { value: code }, code === actionLabel(code) ? code : `${actionLabel(code)} (${code})`),
      ),
    );
    select.value = chosen || "";
  }

  function fillForm() {
    const form = $("filters");
    form.patient.value = state.filters.patient || "";
    form.study.value = state.filters.study || "";
    form.actor.value = state.filters.actor || "";
    fillActions(state.filters.action || "");
    const limit = state.filters.limit || DEFAULT_LIMIT;
    if (!Array.from(form.limit.options).some((option) => option.value === limit)) {
      form.limit.append(element("option", { value: limit }, limit));
    }
    form.limit.value = limit;
  }

  function readForm() {
    const form = $("filters");
    const filters = {};
    for (const name of ["patient", "study", "actor", "action"]) {
      const value = form[name].value.trim();
      if (value) filters[name] = value;
    }
    if (form.limit.value !== DEFAULT_LIMIT) filters.limit = cleanLimit(form.limit.value);
    return filters;
  }

  // -- loading ----------------------------------------------------------------

  async function load(more) {
    if (more && state.loading) return;
    // A newer question (other filters) wins over one still on its way.
    state.seq += 1;
    const seq = state.seq;
    state.loading = true;
    state.error = "";
    const query = new URLSearchParams(queryOf(state.filters));
    if (!query.has("limit")) query.set("limit", DEFAULT_LIMIT);
    if (more && state.next) query.set("before_id", String(state.next));
    if (!more) {
      state.items = [];
      state.next = null;
      state.patientIds = null;
    }
    renderStatus();
    let trail = null;
    let failure = null;
    try {
      trail = await get(`/admin/audit?${query.toString()}`);
    } catch (error) {
      failure = error;
    }
    if (seq !== state.seq) return;
    state.loading = false;
    if (trail) {
      state.items = more ? state.items.concat(trail.items) : trail.items;
      state.patientIds = trail.patient_ids;
      state.next = trail.next_before_id;
    } else if (failure instanceof ApiError && failure.status === 401) {
      return; // on the way to the sign-in page
    } else if (failure instanceof ApiError && failure.status === 403) {
      state.forbidden = true;
    } else if (failure instanceof ApiError) {
      state.error = t("audit.error", { detail: failure.message });
    } else {
      state.error = t("error.network");
    }
    render();
    document.body.dataset.ready = "true";
  }

  function applyFilters(filters, push) {
    state.filters = filters;
    const address = `${window.location.pathname}${queryOf(filters)}`;
    if (push && address !== `${window.location.pathname}${window.location.search}`) {
      window.history.pushState(null, "", address);
    }
    fillForm();
    load(false);
  }

  // -- rendering --------------------------------------------------------------

  function two(number) {
    return String(number).padStart(2, "0");
  }

  function timeCell(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return element("td", {}, iso);
    const day = lang() === "vi"
      ? `${two(when.getDate())}/${two(when.getMonth() + 1)}/${when.getFullYear()}`
      : `${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())}`;
    const clock = `${two(when.getHours())}:${two(when.getMinutes())}:${two(when.getSeconds())}`;
    return element(
      "td",
      { className: "when" },
      element("time", { datetime: iso, title: iso }, element("span", {}, day), " ", element("span", {}, clock)),
    );
  }

  function filterLink(name, value, text, className) {
    const filters = Object.assign({}, state.filters, { [name]: value });
    return element("a", {
      href: `${window.location.pathname}${queryOf(filters)}`,
      className: `filter-link ${className || ""}`.trim(),
      title: t("audit.filterBy", { value }),
      "data-filter": name,
      "data-value": value,
      text,
    });
  }

  function actorCell(event) {
    const kind = has(`kind.${event.actor_kind}`) ? t(`kind.${event.actor_kind}`) : event.actor_kind;
    return element(
      "td",
      { className: "actor" },
      event.actor ? filterLink("actor", event.actor, event.actor) : "—",
      element("small", { className: "detail" }, kind),
    );
  }

  function actionCell(event) {
    const label = actionLabel(event.action);
    return element(
      "td",
      { className: "action" },
      label === event.action ? null : element("span", { className: "action-label" }, label),
      element("code", { className: "code" }, event.action),
    );
  }

  function outcomeCell(event) {
    const key = `outcome.${event.outcome}`;
    return element(
      "td",
      {},
      element("span", {
        className: `badge outcome outcome-${event.outcome}`,
        text: has(key) ? t(key) : event.outcome,
      }),
    );
  }

  /** A UID cut in the middle when narrow: UIDs share their root and differ at the end. */
  function uidText(node, uid) {
    const cut = Math.max(uid.length - UID_TAIL, 0);
    node.replaceChildren(
      element("span", { className: "uid-head" }, uid.slice(0, cut)),
      element("span", { className: "uid-tail" }, uid.slice(cut)),
    );
    return node;
  }

  function objectCell(event) {
    const study = event.study_instance_uid;
    const sop = event.sop_instance_uid;
    if (!study && !sop) return element("td", { className: "object empty" }, "—");
    const cell = element("td", { className: "object" });
    if (study && UID.test(study)) {
      const link = filterLink("study", study, study, "uid-line");
      link.title = `Study Instance UID ${study}\n${link.title}`;
      cell.append(uidText(link, study));
    } else if (study) {
      const line = element("span", { className: "uid-line", title: `Study Instance UID ${study}` });
      cell.append(uidText(line, study));
    }
    if (sop) {
      const line = element("span", { className: "uid-line sop", title: `SOP Instance UID ${sop}` });
      cell.append(uidText(line, sop));
    }
    return cell;
  }

  function shortText(value) {
    let text;
    if (Array.isArray(value)) {
      const shown = value.slice(0, 3).map((item) =>
        item !== null && typeof item === "object" ? JSON.stringify(item) : String(item),
      );
      text = `[${shown.join(", ")}${value.length > 3 ? `, … +${value.length - 3}` : ""}]`;
    } else if (value === null) {
      text = "null";
    } else {
      text = String(value);
    }
    return text.length > DETAIL_TEXT ? `${text.slice(0, DETAIL_TEXT - 1)}…` : text;
  }

  function flatten(value, prefix, pairs) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const entries = Object.entries(value);
      if (!entries.length && prefix) pairs.push([prefix, "{}"]);
      for (const [key, inner] of entries) flatten(inner, prefix ? `${prefix}.${key}` : key, pairs);
    } else {
      pairs.push([prefix, shortText(value)]);
    }
    return pairs;
  }

  function detailCell(event) {
    const pairs = flatten(event.detail || {}, "", []);
    if (!pairs.length) return element("td", { className: "kv empty" }, "—");
    const list = element("ul", { className: "kv-list" });
    for (const [key, value] of pairs.slice(0, DETAIL_PAIRS)) {
      list.append(element("li", {}, element("span", { className: "k" }, `${key}:`), " ", value));
    }
    if (pairs.length > DETAIL_PAIRS) list.append(element("li", { className: "muted" }, `… +${pairs.length - DETAIL_PAIRS}`));
    return element("td", { className: "kv", title: JSON.stringify(event.detail, null, 1) }, list);
  }

  function idCell(value) {
    return value === null || value === undefined
      ? element("td", { className: "num empty" }, "—")
      : element("td", { className: "num" }, `#${value}`);
  }

  function row(event) {
    return element(
      "tr",
      { "data-event-id": event.id, "data-action": event.action, "data-outcome": event.outcome },
      timeCell(event.occurred_at),
      actorCell(event),
      actionCell(event),
      outcomeCell(event),
      event.source_address
        ? element("td", { className: "source" }, event.source_address)
        : element("td", { className: "empty" }, "—"),
      idCell(event.facility_id),
      idCell(event.patient_id),
      objectCell(event),
      detailCell(event),
    );
  }

  function renderStatus() {
    const busy = state.loading;
    $("events").setAttribute("aria-busy", String(busy));
    $("filter").disabled = busy;
    $("more").disabled = busy;
    if (busy) {
      $("summary").textContent = t("audit.loading");
      $("empty").hidden = true;
    }
  }

  function renderPatients() {
    const line = $("patients");
    const value = state.filters.patient;
    if (!value || state.patientIds === null) {
      line.textContent = "";
      line.hidden = true;
      return;
    }
    line.hidden = false;
    line.textContent = state.patientIds.length
      ? t("audit.patients", { value, ids: state.patientIds.map((id) => `#${id}`).join(", ") })
      : t("audit.noPatient", { value });
  }

  function render() {
    $("forbidden").hidden = !state.forbidden;
    $("audit").hidden = state.forbidden;
    if (state.forbidden) {
      renderForbidden();
      return;
    }
    const error = $("audit-error");
    error.textContent = state.error;
    error.hidden = !state.error;
    const body = $("events").tBodies[0];
    body.replaceChildren(...state.items.map(row));
    $("summary").textContent = state.items.length
      ? t(state.next ? "audit.countMore" : "audit.count", { count: state.items.length })
      : "";
    $("empty").hidden = Boolean(state.items.length) || Boolean(state.error) || state.loading;
    $("empty").textContent = t("audit.none");
    $("more").hidden = !state.next;
    $("export").disabled = !state.items.length;
    renderPatients();
    renderStatus();
  }

  function roleName(role) {
    return has(`role.${role}`) ? t(`role.${role}`) : role;
  }

  function renderForbidden() {
    const who = state.me ? `${state.me.username} (${roleName(state.me.role)})` : "";
    $("forbidden-who").textContent = who ? t("audit.adminsOnlyRole", { who }) : "";
  }

  function showMe() {
    if (state.me) $("who").textContent = `${state.me.username} · ${roleName(state.me.role)}`;
  }

  function rerender() {
    showMe();
    fillActions($("f-action").value);
    render();
  }

  // -- CSV --------------------------------------------------------------------

  function csvCell(value) {
    if (value === null || value === undefined) return "";
    let text = typeof value === "object" ? JSON.stringify(value) : String(value);
    // A spreadsheet must not run a cell as a formula (OWASP "CSV injection").
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function exportCsv() {
    const lines = [CSV_COLUMNS.join(",")];
    for (const event of state.items) lines.push(CSV_COLUMNS.map((name) => csvCell(event[name])).join(","));
    // The byte order mark makes spreadsheets read the Vietnamese text as UTF-8.
    const blob = new Blob(["\ufeff", lines.join("\r\n"), "\r\n"], { type: "text/csv;charset=utf-8" });
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const link = element("a", { href: URL.createObjectURL(blob), download: `soi-audit-${stamp}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // -- page -------------------------------------------------------------------

  async function signOut() {
    try {
      await request("POST", "/auth/logout");
    } finally {
      window.location.assign("/ui/login");
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    apply();
    bindSwitch();
    onChange(rerender);
    state.filters = filtersFrom(window.location.search);
    fillForm();
    $("sign-out").addEventListener("click", signOut);
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const filters = readForm();
      if (filters.study && !UID.test(filters.study)) {
        state.error = t("audit.badStudy");
        render();
        $("f-study").focus();
        return;
      }
      applyFilters(filters, true);
    });
    $("clear").addEventListener("click", () => applyFilters({}, true));
    $("more").addEventListener("click", () => load(true));
    $("export").addEventListener("click", exportCsv);
    $("events").addEventListener("click", (event) => {
      const link = event.target.closest("a.filter-link");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      applyFilters(filtersFrom(new URL(link.href).search), true);
    });
    window.addEventListener("popstate", () => applyFilters(filtersFrom(window.location.search), false));
    try {
      state.me = await get("/auth/me");
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        state.error = t("error.network");
        $("audit").hidden = false;
        render();
      }
      return; // 401: on the way to the sign-in page
    }
    showMe();
    // Others learn from the server's answer (403) that the page is not theirs.
    if (state.me.role === "admin") $("audit").hidden = false;
    await load(false);
  });
})();
