// dispatcher console: plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Every /v1 call carries `Authorization: Bearer <token>`; the token is asked for once and
// kept in sessionStorage (this tab only); a 401 asks for it again. The campaigns list is
// fetched again every LIST_REFRESH_MS; the chosen campaign follows its server-sent events,
// read with fetch() and a stream parser since EventSource cannot send the token.
"use strict";

(() => {
  const TOKEN_KEY = "dispatcher.console.token";
  const LIST_REFRESH_MS = 2000;
  const PAGE_SIZE = 50;
  const MAX_PAGES = 20;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 15000;
  const PAUSABLE = new Set(["queued", "scheduled"]);
  const FINISHED = new Set(["cancelled", "sent", "done"]);

  const $ = (id) => document.getElementById(id);
  const numbers = new Intl.NumberFormat();
  const n = (value) => numbers.format(value);

  class AuthError extends Error {}

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    running: false,
    pages: 1, // pages of the list to show ("Load more" adds one)
    listTimer: 0,
    listBusy: false,
    rows: new Map(), // campaign id → <tr>
    selected: null, // campaign id
    detail: null, // its latest status
    events: 0, // status events received for it
    stream: null, // AbortController of its event stream
    deadKey: null, // what the dead letters shown were read for
    acting: false,
  };

  // ---- API -------------------------------------------------------------------------

  async function api(path, { method = "GET", signal, accept = "application/json" } = {}) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        signal,
        cache: "no-store",
        headers: { Authorization: `Bearer ${state.token}`, Accept: accept },
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "cannot reach the API");
    }
    if (resp.status === 401) {
      signIn("The API did not accept the token; enter it again.");
      throw new AuthError("unauthorised");
    }
    if (!resp.ok) throw await problem(resp);
    return resp;
  }

  /** An application/problem+json answer as one line: title: detail (field). */
  async function problem(resp) {
    let p = {};
    try {
      p = await resp.json();
    } catch {
      // not JSON: the status line says enough
    }
    let text = p.title || `${resp.status} ${resp.statusText}`.trim();
    if (p.detail) text += `: ${p.detail}`;
    if (p.field) text += ` (${p.field})`;
    return new ApiError(resp.status, text);
  }

  const campaignPath = (id) => `/v1/campaigns/${encodeURIComponent(id)}`;

  /** The server-sent events of a fetch() body: {event, data} objects (text/event-stream). */
  async function* serverEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "";
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let start = 0;
        for (let i = 0; i < buffer.length; i++) {
          const c = buffer[i];
          if (c !== "\n" && c !== "\r") continue;
          if (c === "\r" && i + 1 === buffer.length) break; // a "\n" may follow
          const line = buffer.slice(start, i);
          if (c === "\r" && buffer[i + 1] === "\n") i++;
          start = i + 1;
          if (line === "") {
            if (data.length) yield { event: event || "message", data: data.join("\n") };
            event = "";
            data = [];
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let val = colon < 0 ? "" : line.slice(colon + 1);
            if (val.startsWith(" ")) val = val.slice(1);
            if (field === "event") event = val;
            else if (field === "data") data.push(val);
          }
        }
        buffer = buffer.slice(start);
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // ---- sign-in ---------------------------------------------------------------------

  function signIn(message) {
    stop();
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("connection").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function start() {
    state.running = true;
    $("login").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    listLoop();
    route();
  }

  function stop() {
    state.running = false;
    clearTimeout(state.listTimer);
    deselect();
  }

  // ---- the list --------------------------------------------------------------------

  async function listLoop() {
    clearTimeout(state.listTimer);
    if (!state.running) return;
    if (!document.hidden) await refreshList();
    if (state.running) state.listTimer = setTimeout(listLoop, LIST_REFRESH_MS);
  }

  async function refreshList() {
    if (state.listBusy) return;
    state.listBusy = true;
    try {
      const filter = $("state-filter").value;
      const items = [];
      let cursor = null;
      for (let page = 0; page < state.pages; page++) {
        const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (filter) q.set("state", filter);
        if (cursor) q.set("cursor", cursor);
        const body = await (await api(`/v1/campaigns?${q}`)).json();
        items.push(...body.items);
        cursor = body.next_cursor;
        if (!cursor) break;
      }
      $("more").hidden = !cursor || state.pages >= MAX_PAGES;
      renderList(items);
      setConnection("");
    } catch (err) {
      if (!(err instanceof AuthError)) setConnection(`Campaigns not updated: ${err.message}`);
    } finally {
      state.listBusy = false;
    }
  }

  function setConnection(text) {
    const el = $("connection");
    if (el.textContent !== text) el.textContent = text;
  }

  function renderList(items) {
    const tbody = $("campaign-rows");
    const keep = new Set();
    let before = tbody.firstElementChild;
    for (const item of items) {
      // The chosen campaign's stream is fresher than the list.
      const st = item.id === state.selected && state.detail ? state.detail : item;
      const tr = rowFor(st);
      keep.add(st.id);
      if (tr !== before) tbody.insertBefore(tr, before);
      else before = before.nextElementSibling;
    }
    for (const [id, tr] of state.rows) {
      if (!keep.has(id)) {
        tr.remove();
        state.rows.delete(id);
      }
    }
    $("list-empty").hidden = items.length > 0;
  }

  function rowFor(st) {
    let tr = state.rows.get(st.id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.id = st.id;
      tr.setAttribute("data-testid", `row-${st.id}`);
      const link = document.createElement("a");
      link.href = `#/campaigns/${encodeURIComponent(st.id)}`;
      link.className = "mono";
      link.textContent = st.id;
      const cells = [link, "", stateBadge(), progressBar(`progress-${st.id}`, st.id), ""];
      for (const content of cells) {
        const td = document.createElement("td");
        td.append(content);
        tr.append(td);
      }
      tr.cells[2].firstChild.setAttribute("data-testid", `state-${st.id}`);
      tr.cells[4].append(timeOf(st.created_at));
      tr.addEventListener("click", (ev) => {
        if (!(ev.target instanceof HTMLAnchorElement)) link.click();
      });
      state.rows.set(st.id, tr);
    }
    updateRow(tr, st);
    return tr;
  }

  function updateRow(tr, st) {
    tr.cells[1].textContent = `${st.provider} / ${st.account}`;
    setBadge(tr.cells[2].firstChild, st.state);
    setProgress(tr.cells[3].firstChild, st);
    tr.setAttribute("aria-current", String(st.id === state.selected));
  }

  // ---- widgets ---------------------------------------------------------------------

  function stateBadge() {
    const span = document.createElement("span");
    span.className = "state";
    return span;
  }

  function setBadge(span, value) {
    if (span.textContent !== value) {
      span.textContent = value;
      span.className = `state state-${value}`;
    }
  }

  /** Recipients with a send result. */
  const sentOf = (st) =>
    typeof st.pending === "number"
      ? st.total - st.pending
      : Object.values(st.counts || {}).reduce((a, b) => a + b, 0);

  function progressBar(testid, id) {
    const cell = document.createElement("div");
    cell.className = "progress-cell";
    const bar = document.createElement("div");
    bar.className = "progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-label", `Campaign ${id}: recipients sent`);
    bar.setAttribute("data-testid", testid);
    const fill = document.createElement("span");
    fill.className = "fill";
    bar.append(fill);
    const label = document.createElement("span");
    label.className = "progress-label";
    cell.append(bar, label);
    return cell;
  }

  function setProgress(cell, st) {
    const [bar, label] = cell.children;
    const sent = sentOf(st);
    const pct = st.total ? (100 * sent) / st.total : 100;
    bar.setAttribute("aria-valuemax", String(st.total));
    bar.setAttribute("aria-valuenow", String(sent));
    bar.setAttribute("aria-valuetext", `${n(sent)} of ${n(st.total)} sent (${Math.floor(pct)}%)`);
    bar.dataset.state = st.state;
    bar.firstChild.style.width = `${pct}%`;
    label.textContent = `${n(sent)} / ${n(st.total)}`;
  }

  function timeOf(ms) {
    const t = document.createElement("time");
    const d = new Date(ms);
    t.dateTime = d.toISOString();
    t.title = d.toISOString();
    t.textContent = d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
    return t;
  }

  /** Fill a two-column table body from {name: count}, largest first. */
  function fillCounts(table, counts) {
    const tbody = table.tBodies[0];
    const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const rows = entries.length ? entries : [["none", null]];
    tbody.replaceChildren(
      ...rows.map(([name, count]) => {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = name;
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = count === null ? "" : n(count);
        if (count !== null) tr.setAttribute("data-testid", `${table.id}-${name}`);
        tr.append(th, td);
        return tr;
      }),
    );
  }

  // ---- one campaign ----------------------------------------------------------------

  function route() {
    const m = /^#\/campaigns\/(.+)$/.exec(location.hash);
    if (m) select(decodeURIComponent(m[1]), true);
    else deselect();
  }

  function select(id, focus) {
    if (!state.running || state.selected === id) return;
    deselect();
    state.selected = id;
    state.events = 0;
    const detail = $("detail");
    detail.dataset.campaignId = id;
    detail.dataset.events = "0";
    $("detail-id").textContent = id;
    $("action-message").textContent = "";
    $("dead-letters").tBodies[0].replaceChildren();
    $("dead-letters").hidden = true;
    $("dead-empty").hidden = true;
    const slot = $("detail-progress-slot");
    slot.replaceChildren(progressBar("detail-progress", id));
    slot.firstChild.firstChild.id = "detail-progress";
    for (const tr of state.rows.values()) tr.setAttribute("aria-current", String(tr.dataset.id === id));
    detail.hidden = false;
    const row = state.rows.get(id);
    if (row) {
      const cells = row.cells;
      // Until the first event: what the list knew.
      $("detail-state").textContent = cells[2].textContent;
    }
    setButtons();
    if (focus) $("detail-title").focus({ preventScroll: false });
    follow(id);
  }

  function deselect() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.selected = null;
    state.detail = null;
    state.deadKey = null;
    $("detail").hidden = true;
    for (const tr of state.rows.values()) tr.setAttribute("aria-current", "false");
  }

  /** Follow the campaign's event stream until it ends or another is chosen. */
  function follow(id) {
    if (state.stream) state.stream.abort();
    const ctrl = new AbortController();
    state.stream = ctrl;
    const streamStatus = (text) => {
      if (state.stream === ctrl) $("stream-status").textContent = text;
    };
    (async () => {
      let delay = RETRY_MIN_MS;
      while (!ctrl.signal.aborted) {
        try {
          streamStatus("connecting…");
          const resp = await api(`${campaignPath(id)}/events`, {
            signal: ctrl.signal,
            accept: "text/event-stream",
          });
          streamStatus("live");
          for await (const ev of serverEvents(resp.body)) {
            if (ctrl.signal.aborted) return;
            if (ev.event === "status") {
              delay = RETRY_MIN_MS;
              onStatus(JSON.parse(ev.data));
            } else if (ev.event === "end") {
              streamStatus("");
              return;
            }
          }
          streamStatus("reconnecting…"); // closed without an end: connect again
        } catch (err) {
          if (ctrl.signal.aborted || err instanceof AuthError) return;
          if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
            streamStatus("");
            $("action-message").textContent = err.message;
            return;
          }
          streamStatus(`reconnecting: ${err.message}`);
        }
        await sleep(delay, ctrl.signal);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    })();
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }

  function onStatus(st) {
    if (st.id !== state.selected) return;
    state.detail = st;
    state.events += 1;
    $("detail").dataset.events = String(state.events);
    renderDetail(st);
    const row = state.rows.get(st.id);
    if (row) updateRow(row, st);
    const deadKey = `${st.counts.failed || 0}/${st.state}`;
    if (deadKey !== state.deadKey) {
      state.deadKey = deadKey;
      loadDead(st.id);
    }
  }

  function renderDetail(st) {
    setBadge($("detail-state"), st.state);
    const reason = $("detail-reason");
    reason.textContent = st.reason ? `Reason: ${st.reason}` : "";
    reason.hidden = !st.reason;
    setProgress($("detail-progress-slot").firstChild, st);
    $("f-provider").textContent = st.provider;
    $("f-account").textContent = st.account;
    $("f-created").replaceChildren(timeOf(st.created_at));
    $("f-total").textContent = n(st.total);
    $("f-pending").textContent = n(st.pending);
    $("f-open").textContent = n(st.open);
    $("f-duplicates").textContent = n(st.duplicates);
    $("f-share").textContent =
      st.share === null || st.share === undefined ? "—" : `${(100 * st.share).toFixed(1)} %`;
    fillCounts($("counts"), st.counts);
    fillCounts($("finals"), st.finals);
    fillCounts($("parked"), st.parked);
    setButtons();
  }

  function setButtons() {
    const st = state.detail;
    const current = st ? st.state : $("detail-state").textContent;
    $("pause").disabled = state.acting || !PAUSABLE.has(current);
    $("resume").disabled = state.acting || current !== "paused";
    $("cancel").disabled = state.acting || FINISHED.has(current) || Boolean(st && st.sent);
  }

  async function loadDead(id) {
    try {
      const body = await (await api(`${campaignPath(id)}/dead`)).json();
      if (id !== state.selected) return;
      const items = [...body.items].sort((a, b) => a.index - b.index);
      $("dead-letters").tBodies[0].replaceChildren(
        ...items.map((item) => {
          const tr = document.createElement("tr");
          const index = document.createElement("td");
          index.className = "num";
          index.textContent = String(item.index);
          const why = document.createElement("td");
          why.textContent = item.reason;
          tr.append(index, why);
          return tr;
        }),
      );
      $("dead-letters").hidden = items.length === 0;
      $("dead-empty").textContent = "None.";
      $("dead-empty").hidden = items.length > 0;
    } catch (err) {
      if (!(err instanceof AuthError) && id === state.selected) {
        $("dead-empty").hidden = false;
        $("dead-empty").textContent = `Not read: ${err.message}`;
      }
    }
  }

  async function control(action) {
    const id = state.selected;
    if (!id || state.acting) return;
    if (
      action === "cancel" &&
      !window.confirm(
        `Cancel campaign ${id}? Nothing more is sent; every recipient without a send ` +
          "result becomes “cancelled”. This cannot be undone.",
      )
    ) {
      return;
    }
    state.acting = true;
    setButtons();
    const message = $("action-message");
    message.textContent = `${action}…`;
    try {
      const out = await (await api(`${campaignPath(id)}/${action}`, { method: "POST" })).json();
      if (id !== state.selected) return;
      message.textContent = out.message || `${out.id}: ${out.state}`;
      if (state.detail && out.state) {
        state.detail = { ...state.detail, state: out.state };
        renderDetail(state.detail);
      } else if (out.state) {
        setBadge($("detail-state"), out.state);
      }
      follow(id); // a fresh status at once, and a stream again if the last one ended
      refreshList();
    } catch (err) {
      if (!(err instanceof AuthError) && id === state.selected) message.textContent = err.message;
    } finally {
      state.acting = false;
      if (id === state.selected) setButtons();
    }
  }

  // ---- wiring ----------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      $("login-error").textContent = "";
      start();
    });
    $("sign-out").addEventListener("click", () => signIn(""));
    $("state-filter").addEventListener("change", () => {
      state.pages = 1;
      listLoop();
    });
    $("more").addEventListener("click", () => {
      state.pages += 1;
      listLoop();
    });
    $("close-detail").addEventListener("click", () => {
      history.replaceState(null, "", location.pathname + location.search);
      deselect();
    });
    for (const action of ["pause", "resume", "cancel"]) {
      $(action).addEventListener("click", () => control(action));
    }
    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.running) listLoop();
    });
    if (state.token) start();
    else signIn("");
  });
})();
