/* The upload page: pick files, a folder or ZIPs; send each with tus (resumable, 1 MB
 * chunks, automatic retries that resume from the server's offset); then the receipt
 * (what was stored or refused, and why) and each study's state and AI result. */
(function () {
  "use strict";
  const { t, has, lang, apply, onChange, bindSwitch, formatBytes } = window.SoiI18n;
  const { get, request, csrfToken, toSignIn, ApiError } = window.SoiApi;

  const CHUNK = 1024 * 1024;
  const PARALLEL = 3;
  // About ten minutes of retries; the counter starts again whenever bytes get through.
  const RETRY_DELAYS = [
    0, 1000, 2000, 3000, 5000, 5000, 10000, 10000, 15000, 15000, 20000, 30000, 30000, 30000,
    60000, 60000, 60000, 60000, 60000, 60000,
  ];
  const STUDY_POLL_MS = 4000;
  const RECEIPT_POLL_MS = 1500;
  const BATCH_KEY = "soi.upload.batch";
  const FINISHED = new Set(["stored", "already-stored", "refused", "skipped", "failed", "zip"]);
  const TERMINAL_JOBS = new Set(["done", "ungradable", "failed"]);

  const state = {
    me: null,
    models: {},
    maxSize: 0,
    items: [],
    batch: "",
    running: false,
    receipt: null,
    receiptTimer: 0,
    studies: new Map(),
    linkTimer: 0,
    linkLost: false,
  };

  const $ = (id) => document.getElementById(id);

  const element = window.SoiDom.element;

  function pathText(path) {
    const span = element("span", { className: "path-text" });
    path.split("/").forEach((part, index, parts) => {
      span.append(index < parts.length - 1 ? `${part}/` : part);
      if (index < parts.length - 1) span.append(document.createElement("wbr"));
    });
    return span;
  }

  function newBatchId() {
    const bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // -- picking ---------------------------------------------------------------

  function addFiles(files) {
    if (state.running) return;
    for (const file of files) {
      const path = file.soiPath || file.webkitRelativePath || file.name;
      const twin = state.items.find(
        (item) => item.path === path && item.file.size === file.size,
      );
      if (twin) continue;
      state.items.push({
        file,
        path,
        state: "waiting",
        sent: 0,
        accepted: 0,
        detail: "",
        row: null,
        counts: null,
      });
    }
    renderPicked();
    renderFiles();
  }

  async function entriesOf(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      file.soiPath = `${prefix}${file.name}`;
      return [file];
    }
    if (!entry.isDirectory) return [];
    const reader = entry.createReader();
    const found = [];
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) found.push(...(await entriesOf(child, `${prefix}${entry.name}/`)));
    }
    return found;
  }

  async function dropped(event) {
    event.preventDefault();
    $("drop").classList.remove("over");
    const items = Array.from(event.dataTransfer.items || []);
    const entries = items.map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
    if (entries.length && entries.every(Boolean)) {
      const files = [];
      for (const entry of entries) files.push(...(await entriesOf(entry, "")));
      addFiles(files);
    } else {
      addFiles(Array.from(event.dataTransfer.files || []));
    }
  }

  function renderPicked() {
    const total = state.items.reduce((sum, item) => sum + item.file.size, 0);
    $("picked").textContent = state.items.length
      ? t("pick.count", { count: state.items.length, size: formatBytes(total) })
      : t("pick.none");
    $("start").disabled = state.running || !state.items.some((item) => item.state === "waiting");
    $("clear").disabled = state.running || !state.items.length;
  }

  // -- progress ---------------------------------------------------------------

  function stateText(item) {
    if (item.state === "zip") return t("state.zip", item.counts);
    if (item.state === "failed") return `${t("state.failed")}: ${item.detail}`;
    return t(`state.${item.state}`);
  }

  function renderRow(item) {
    if (!item.row) {
      const bar = element("progress", { max: Math.max(item.file.size, 1), value: 0 });
      const percent = element("span", { className: "percent" });
      const status = element("span", { className: "state" });
      item.row = element(
        "tr",
        { "data-path": item.path },
        element("th", { scope: "row", className: "path" }, pathText(item.path)),
        element("td", { className: "num narrow-hide" }, formatBytes(item.file.size)),
        element("td", { className: "progress-cell" }, bar, percent),
        element("td", {}, status),
      );
      item.bar = bar;
      item.percent = percent;
      item.status = status;
    }
    const size = Math.max(item.file.size, 1);
    const sent = FINISHED.has(item.state) || item.state === "received" ? size : item.sent;
    item.bar.value = Math.min(sent, size);
    item.bar.setAttribute("aria-label", `${item.path}: ${Math.floor((100 * sent) / size)}%`);
    item.percent.textContent = `${Math.floor((100 * sent) / size)}%`;
    item.status.textContent = stateText(item);
    item.status.className = `state state-${item.state}`;
    item.row.dataset.state = item.state;
  }

  function renderFiles() {
    $("files-section").hidden = !state.items.length;
    const body = $("files").tBodies[0];
    for (const item of state.items) {
      renderRow(item);
      if (item.row.parentNode !== body) body.append(item.row);
    }
    for (const row of Array.from(body.rows)) {
      if (!state.items.some((item) => item.row === row)) row.remove();
    }
    const total = state.items.reduce((sum, item) => sum + item.file.size, 0);
    const sent = state.items.reduce(
      (sum, item) =>
        sum + (FINISHED.has(item.state) || item.state === "received" ? item.file.size : item.sent),
      0,
    );
    $("overall").max = Math.max(total, 1);
    $("overall").value = sent;
    $("overall-text").textContent = t("files.overall", {
      sent: formatBytes(sent),
      total: formatBytes(total),
    });
  }

  function showLink(kind) {
    const banner = $("link");
    if (kind === "lost") {
      window.clearTimeout(state.linkTimer);
      state.linkLost = true;
      banner.textContent = t("link.lost");
      banner.className = "link lost";
      banner.dataset.link = "lost";
      banner.hidden = false;
    } else if (kind === "back" && state.linkLost) {
      window.clearTimeout(state.linkTimer);
      state.linkLost = false;
      banner.textContent = t("link.back");
      banner.className = "link back";
      banner.dataset.link = "back";
      banner.hidden = false;
      state.linkTimer = window.setTimeout(() => {
        banner.hidden = true;
      }, 5000);
    }
  }

  // -- sending ----------------------------------------------------------------

  function problemDetail(error) {
    const response = error && error.originalResponse;
    if (!response) return t("error.network");
    const status = response.getStatus();
    try {
      const body = JSON.parse(response.getBody() || "{}");
      if (status === 413) return `${t("reason.too-large")} (${body.detail || status})`;
      return body.detail || body.title || `HTTP ${status}`;
    } catch (parseError) {
      return `HTTP ${status}`;
    }
  }

  function send(item) {
    return new Promise((resolve) => {
      const upload = new window.tus.Upload(item.file, {
        endpoint: "/uploads",
        chunkSize: CHUNK,
        retryDelays: RETRY_DELAYS,
        metadata: {
          filename: item.file.name,
          relativePath: item.path,
          batch: state.batch,
          filetype: item.file.type || "application/octet-stream",
        },
        // The path is part of the fingerprint: folders of a modality often hold files of
        // the same name, size and date in different series.
        fingerprint: (file) =>
          Promise.resolve(
            ["soi", state.me.username, item.path, file.size, file.lastModified].join("|"),
          ),
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        onBeforeRequest: (req) => {
          if (req.getMethod() !== "HEAD") req.setHeader("X-CSRF-Token", csrfToken());
        },
        onProgress: (sent) => {
          if (item.state !== "uploading") {
            item.state = "uploading";
          }
          item.sent = sent;
          renderRow(item);
          renderFiles();
        },
        onChunkComplete: (chunkSize, accepted) => {
          item.accepted = accepted;
          showLink("back");
        },
        onShouldRetry: (error) => {
          const response = error.originalResponse;
          const status = response ? response.getStatus() : 0;
          if (status === 401) {
            toSignIn("expired");
            return false;
          }
          if (status === 0 || status >= 500 || status === 409 || status === 423) {
            // Bytes sent but not acknowledged may not have arrived: show what Soi has.
            item.state = "retrying";
            item.sent = item.accepted;
            renderRow(item);
            renderFiles();
            showLink("lost");
            return true;
          }
          return false;
        },
        onError: (error) => {
          item.state = "failed";
          item.detail = problemDetail(error);
          renderRow(item);
          resolve();
        },
        onSuccess: () => {
          item.state = "received";
          item.sent = item.file.size;
          renderRow(item);
          renderFiles();
          showLink("back");
          scheduleReceipt(0);
          resolve();
        },
      });
      item.upload = upload;
      upload
        .findPreviousUploads()
        .then((previous) => {
          if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
          item.state = "uploading";
          renderRow(item);
          upload.start();
        })
        .catch(() => upload.start());
    });
  }

  async function chooseBatch(items) {
    // Files picked again after a reload resume their uploads, and keep their batch.
    for (const item of items) {
      const probe = new window.tus.Upload(item.file, {
        endpoint: "/uploads",
        fingerprint: (file) =>
          Promise.resolve(
            ["soi", state.me.username, item.path, file.size, file.lastModified].join("|"),
          ),
      });
      try {
        const previous = await probe.findPreviousUploads();
        const batch = previous.length && previous[0].metadata && previous[0].metadata.batch;
        if (batch) return batch;
      } catch (error) {
        // no stored uploads: a new batch
      }
    }
    return window.localStorage.getItem(BATCH_KEY) || newBatchId();
  }

  async function start() {
    const waiting = state.items.filter((item) => item.state === "waiting");
    if (!waiting.length || state.running) return;
    state.running = true;
    renderPicked();
    state.batch = await chooseBatch(waiting);
    window.localStorage.setItem(BATCH_KEY, state.batch);
    $("receipt-batch").textContent = t("receipt.batch", { batch: state.batch });
    const queue = waiting.slice();
    const workers = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
      while (queue.length) await send(queue.shift());
    });
    await Promise.all(workers);
    state.running = false;
    renderPicked();
    scheduleReceipt(0);
  }

  // -- receipt ----------------------------------------------------------------

  function scheduleReceipt(delay) {
    window.clearTimeout(state.receiptTimer);
    state.receiptTimer = window.setTimeout(refreshReceipt, delay);
  }

  async function refreshReceipt() {
    if (!state.batch) return;
    let receipt;
    try {
      receipt = await get(`/uploads/batches/${encodeURIComponent(state.batch)}`);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status >= 500) scheduleReceipt(RECEIPT_POLL_MS * 2);
      return;
    }
    state.receipt = receipt;
    renderReceipt();
    for (const uid of receipt.studies) watchStudy(uid);
    // Soi is keeping files whose last byte is in: ask again soon. Files still being
    // sent ask again when they are done.
    if (receipt.uploads.some((upload) => upload.state === "received")) {
      scheduleReceipt(RECEIPT_POLL_MS);
    } else if (receipt.complete && !state.running) {
      window.localStorage.removeItem(BATCH_KEY);
    }
  }

  function outcomeBadge(outcome) {
    return element("span", { className: `badge badge-${outcome}`, text: t(`state.${outcome}`) });
  }

  function reasonCell(item) {
    if (!item.code && !item.reason) return element("td", { className: "empty" }, "—");
    const key = `reason.${item.code}`;
    const words = has(key) ? t(key) : item.reason;
    const detail = item.reason && item.reason !== words
      ? element("small", { className: "detail" }, item.status ? `${item.status} · ${item.reason}` : item.reason)
      : null;
    return element("td", {}, element("span", {}, words), detail);
  }

  function renderReceipt() {
    const receipt = state.receipt;
    if (!receipt) return;
    $("receipt-section").hidden = false;
    $("receipt-batch").textContent = t("receipt.batch", { batch: receipt.batch_id });
    const totals = receipt.totals;
    let summary = t("receipt.summary", {
      stored: totals.stored,
      already: totals["already-stored"],
      refused: totals.refused,
      skipped: totals.skipped,
    });
    if (totals.pending) summary += ` · ${t("receipt.pending", { count: totals.pending })}`;
    $("receipt-summary").textContent = summary;
    const body = $("receipt").tBodies[0];
    body.replaceChildren();
    for (const upload of receipt.uploads) {
      const mine = state.items.find((item) => item.path === upload.relative_path);
      if (upload.state === "done" && mine) {
        const outcomes = upload.items.map((item) => item.outcome);
        if (upload.items.some((item) => item.entry)) {
          mine.state = "zip";
          mine.counts = {
            stored: outcomes.filter((o) => o === "stored" || o === "already-stored").length,
            refused: outcomes.filter((o) => o === "refused").length,
          };
        } else if (outcomes.length) {
          mine.state = outcomes[0];
        }
        renderRow(mine);
      }
      if (upload.state !== "done") {
        body.append(
          element(
            "tr",
            { "data-outcome": "pending" },
            element("th", { scope: "row", className: "path" }, pathText(upload.relative_path)),
            element("td", { className: "entry empty" }, "—"),
            element("td", {}, element("span", { className: "badge", text: t("state.received") })),
            element("td", { className: "empty" }, "—"),
          ),
        );
        continue;
      }
      for (const item of upload.items) {
        body.append(
          element(
            "tr",
            { "data-outcome": item.outcome, "data-code": item.code || undefined },
            element("th", { scope: "row", className: "path" }, pathText(upload.relative_path)),
            element(
              "td",
              { className: item.entry ? "entry" : "entry empty" },
              item.entry ? pathText(item.entry) : "—",
            ),
            element("td", {}, outcomeBadge(item.outcome)),
            reasonCell(item),
          ),
        );
      }
    }
    renderFiles();
  }

  // -- studies ----------------------------------------------------------------

  function watchStudy(uid) {
    if (state.studies.has(uid)) return;
    const card = element("article", { className: "study", "data-study-uid": uid, "data-study-state": "waiting" });
    state.studies.set(uid, { uid, card, data: null, done: false });
    $("results-section").hidden = false;
    $("studies").append(card);
    renderStudy(state.studies.get(uid));
    pollStudy(uid);
  }

  async function pollStudy(uid) {
    const entry = state.studies.get(uid);
    try {
      entry.data = await get(`/studies/${encodeURIComponent(uid)}`);
      entry.done = studyDone(entry.data);
    } catch (error) {
      entry.done = false;
    }
    renderStudy(entry);
    if (!entry.done) window.setTimeout(() => pollStudy(uid), STUDY_POLL_MS);
  }

  function studyDone(study) {
    if (study.state !== "stable") return false;
    if (!study.jobs.length) return true;
    return study.jobs.every((job) => TERMINAL_JOBS.has(job.state)) && study.results.length > 0;
  }

  function formatDate(text) {
    const match = /^(\d{4})(\d{2})(\d{2})$/.exec(text || "");
    if (!match) return text || "";
    return lang() === "vi" ? `${match[3]}/${match[2]}/${match[1]}` : `${match[1]}-${match[2]}-${match[3]}`;
  }

  function personName(text) {
    return (text || "").split("=")[0].replace(/\^+/g, " ").trim();
  }

  function findingName(finding) {
    const key = `finding.${finding.label}`;
    return has(key) ? t(key) : (finding.code && finding.code.meaning) || finding.label;
  }

  function resultBlock(study) {
    const block = element("div", { className: "result" });
    if (!study.jobs.length) {
      if (study.state === "stable") block.append(element("p", { className: "muted" }, t("study.noModel")));
      else block.append(element("p", { className: "waiting" }, t("results.waiting")));
      return block;
    }
    const result = study.results[study.results.length - 1];
    const jobs = study.jobs.map((job) => t(`job.${job.state}`)).join(", ");
    if (!result) {
      block.append(element("p", { className: "waiting" }, `${t("results.waiting")} — ${jobs}`));
      return block;
    }
    const reason = (result.reason && (result.reason[lang()] || result.reason.en)) || "";
    const passed = result.state === "complete";
    block.append(
      element(
        "p",
        { className: passed ? "quality ok" : "quality bad" },
        element("strong", {}, `${t("study.quality")}: `),
        passed
          ? t("quality.passed")
          : result.state === "failed"
            ? `${t("job.failed")}${reason ? `: ${reason}` : ""}`
            : t("quality.failed", { reason }),
      ),
    );
    if (passed) {
      block.append(element("p", { className: "notice small" }, t("results.notice")));
      const findings = result.findings
        .slice()
        .sort((a, b) => Number(b.positive) - Number(a.positive) || b.probability - a.probability);
      if (!findings.some((finding) => finding.positive)) {
        block.append(element("p", { className: "muted" }, t("finding.none")));
      }
      const rows = findings.map((finding) =>
        element(
          "tr",
          { className: finding.positive ? "positive" : "" },
          element("th", { scope: "row" }, findingName(finding)),
          element("td", { className: "num" }, `${Math.round(finding.probability * 100)}%`),
          element("td", {}, element("span", {
            className: `badge ${finding.positive ? "badge-refused" : "badge-quiet"}`,
            text: finding.positive ? t("finding.positive") : t("finding.negative"),
          })),
        ),
      );
      block.append(
        element(
          "table",
          { className: "findings" },
          element("thead", {}, element(
            "tr",
            {},
            element("th", { scope: "col" }, t("finding.label")),
            element("th", { scope: "col", className: "num" }, t("finding.probability")),
            element("th", { scope: "col" }, t("finding.result")),
          )),
          element("tbody", {}, ...rows),
        ),
      );
    }
    block.append(
      element("p", { className: "hint" }, t("model", { name: result.model_name, version: result.model_version })),
    );
    const model = state.models[`${result.model_name}@${result.model_version}`];
    if (model && model.training_data.synthetic) {
      block.append(element("p", { className: "hint synthetic" }, t("model.synthetic")));
    }
    return block;
  }

  function renderStudy(entry) {
    const { card, data, uid } = entry;
    card.dataset.studyState = entry.done ? "done" : "waiting";
    card.replaceChildren();
    if (!data) {
      card.append(
        element("h3", {}, t("study.heading", { date: "" })),
        element("p", { className: "uid" }, uid),
        element("p", { className: "waiting" }, t("results.waiting")),
      );
      return;
    }
    const images = data.series.reduce((sum, series) => sum + series.instances.length, 0);
    const heading = [t("study.heading", { date: formatDate(data.study_date) }), data.study_description]
      .filter(Boolean)
      .join(" · ");
    card.append(
      element("h3", {}, heading),
      element(
        "dl",
        {},
        element("dt", {}, t("study.patient")),
        element("dd", {}, personName(data.patient_name) || "—"),
        element("dt", {}, t("study.state")),
        element("dd", {}, t(`study.state.${data.state}`)),
        element("dt", {}, t("study.images")),
        element("dd", {}, String(images)),
        element("dt", {}, t("study.uid")),
        element("dd", { className: "uid" }, uid),
      ),
      resultBlock(data),
    );
  }

  // -- page -------------------------------------------------------------------

  function rerender() {
    renderPicked();
    renderFiles();
    if (state.linkLost) showLink("lost");
    renderReceipt();
    state.studies.forEach(renderStudy);
    if (state.maxSize) $("limit").textContent = t("pick.limit", { size: formatBytes(state.maxSize) });
    if (state.me) showMe();
  }

  function showMe() {
    const role = has(`role.${state.me.role}`) ? t(`role.${state.me.role}`) : state.me.role;
    $("who").textContent = `${state.me.username} · ${role}`;
    $("nav-audit").hidden = state.me.role !== "admin";
  }

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
    $("pick-files").addEventListener("change", (event) => {
      addFiles(Array.from(event.target.files));
      event.target.value = "";
    });
    $("pick-folder").addEventListener("change", (event) => {
      addFiles(Array.from(event.target.files));
      event.target.value = "";
    });
    const drop = $("drop");
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", dropped);
    $("start").addEventListener("click", start);
    $("clear").addEventListener("click", () => {
      if (state.running) return;
      state.items = [];
      renderPicked();
      renderFiles();
    });
    $("sign-out").addEventListener("click", signOut);
    try {
      state.me = await get("/auth/me");
    } catch (error) {
      return; // 401: on the way to the sign-in page
    }
    showMe();
    try {
      for (const model of await get("/models")) state.models[`${model.name}@${model.version}`] = model;
    } catch (error) {
      // without the list, results show the model's name and version only
    }
    try {
      const { response } = await request("OPTIONS", "/uploads");
      state.maxSize = Number(response.headers.get("Tus-Max-Size")) || 0;
      if (state.maxSize) $("limit").textContent = t("pick.limit", { size: formatBytes(state.maxSize) });
    } catch (error) {
      // the limit is only shown; the server enforces it
    }
    const unfinished = window.localStorage.getItem(BATCH_KEY);
    if (unfinished) {
      state.batch = unfinished;
      refreshReceipt();
    }
    document.body.dataset.ready = "true";
  });
})();
