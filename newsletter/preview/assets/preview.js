// The preview page: draws the state the server pushes over Server-Sent Events, in place.
// Every value goes in with textContent (never innerHTML): a subject such as "<b>" is text.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const token = document.querySelector('meta[name="preview-token"]').content;
  let state = JSON.parse($("initial-state").textContent);
  const runId = state.run;
  let view = sessionStorage.getItem("preview-view") || "desktop";
  let shownHtml = null;   // the HTML in the visible frame
  let renderId = null;    // what "Send test" sends: the render on screen

  // a marker tests use to prove that updates never reload the page
  window.__previewLoadedAt = Date.now();

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  const kb = (n) => (n / 1024).toFixed(1) + " KB";

  // -- views -------------------------------------------------------------------------------
  function setView(name) {
    view = ["desktop", "phone", "dark", "text"].includes(name) ? name : "desktop";
    sessionStorage.setItem("preview-view", view);
    $("stage").dataset.view = view;
    if (state.email) showHtml(view === "dark" ? state.email.html_dark : state.email.html);
    document.querySelectorAll(".seg button").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.view === view)));
    requestAnimationFrame(() => fit(activeFrame()));
  }
  document.querySelectorAll(".seg button").forEach((b) =>
    b.addEventListener("click", () => setView(b.dataset.view)));

  // -- the email frame: two iframes, the new version loads hidden, then they swap (no flash) --
  const frames = Array.from(document.querySelectorAll(".email-frame"));
  const activeFrame = () => frames.find((f) => f.classList.contains("active"));

  function fit(frame) {
    const doc = frame && frame.contentDocument;
    if (!doc || !doc.body) return;
    const style = getComputedStyle(doc.body);
    const h = doc.body.offsetHeight + parseFloat(style.marginTop) + parseFloat(style.marginBottom);
    frame.style.height = Math.max(Math.ceil(h), 120) + "px";
  }

  function showHtml(html) {
    if (html === shownHtml) return;
    shownHtml = html;
    const next = frames.find((f) => !f.classList.contains("active"));
    next.onload = () => {
      next.onload = null;
      fit(next);
      const old = activeFrame();
      next.classList.add("active");
      next.removeAttribute("aria-hidden");
      next.removeAttribute("tabindex");
      if (old && old !== next) {
        old.classList.remove("active");
        old.setAttribute("aria-hidden", "true");
        old.setAttribute("tabindex", "-1");
        old.srcdoc = "";
      }
      watchSize(next);
    };
    next.srcdoc = html;
  }

  let observer = null;
  function watchSize(frame) {  // images arriving late change the height
    if (observer) observer.disconnect();
    try {
      observer = new ResizeObserver(() => fit(frame));
      observer.observe(frame.contentDocument.body);
    } catch (e) { observer = null; }
  }
  window.addEventListener("resize", () => fit(activeFrame()));

  // -- drawing ------------------------------------------------------------------------------
  function drawInbox(email) {
    $("inbox-avatar").textContent = (email.from_name || "?").trim().charAt(0).toUpperCase();
    $("inbox-sender").textContent = email.from_name;
    $("inbox-sender").title = `${email.from_name} <${email.from_email}>`;
    $("inbox-subject").textContent = email.subject;
    const pre = $("inbox-preheader");
    pre.textContent = email.preheader ||
      "(no preheader: clients show the first words of the email here)";
    pre.classList.toggle("missing", !email.preheader);
    $("inbox-date").textContent = formatDate(email.date);
    document.title = `Preview · ${email.subject}`;
  }

  function formatDate(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
    if (!m) return "";
    const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return `${months[Number(m[2]) - 1]} ${Number(m[3])}, ${m[1]}`;
  }

  function drawSize(email) {
    const pct = (email.html_bytes / email.limit) * 100;
    const meter = $("size-meter");
    meter.classList.toggle("warn", email.html_bytes >= email.warn && email.html_bytes < email.limit);
    meter.classList.toggle("bad", email.html_bytes >= email.limit);
    meter.setAttribute("aria-valuemax", String(email.limit));
    meter.setAttribute("aria-valuenow", String(email.html_bytes));
    $("size-fill").style.width = Math.min(pct, 100).toFixed(1) + "%";
    $("size-tick").style.left = ((email.warn / email.limit) * 100).toFixed(1) + "%";
    $("size-value").textContent = kb(email.html_bytes) + " of HTML";
    $("size-of").textContent = `(${Math.round(pct)}% of Gmail's ${Math.round(email.limit / 1024)} KB clipping limit)`;
    let hint = `Plain text: ${kb(email.text_bytes)}.`;
    if (email.html_bytes >= email.limit) hint = "Gmail will clip this message and hide the rest, the unsubscribe link included. " + hint;
    else if (email.html_bytes >= email.warn) hint = "Close to the limit: leave room for what providers add. " + hint;
    $("size-hint").textContent = hint;
  }

  function drawChecks(checks) {
    const box = $("checks");
    box.replaceChildren();
    $("checks-counts").textContent = "";
    if (checks.state === "pending") { box.append(el("p", "pending", "Running checks…")); return; }
    if (checks.state !== "done") { box.append(el("p", "pending", checks.message)); return; }
    if (!checks.findings.length) { box.append(el("p", "all-clear", "✓ No problems found.")); return; }
    const names = { error: ["error", "errors"], warning: ["warning", "warnings"], note: ["note", "notes"] };
    const counts = [];
    for (const level of ["error", "warning", "note"]) {
      const items = checks.findings.filter((f) => f.level === level);
      if (!items.length) continue;
      counts.push(`${items.length} ${names[level][items.length === 1 ? 0 : 1]}`);
      const group = el("div", `group ${level}`);
      const title = names[level][1];
      group.append(el("h3", null, `${title.charAt(0).toUpperCase()}${title.slice(1)} (${items.length})`));
      const list = el("ul");
      for (const f of items) {
        const li = el("li", "finding");
        li.append(el("span", "cat", f.category), document.createTextNode(f.message));
        if (f.where) li.append(el("span", "where", f.where));
        list.append(li);
      }
      group.append(list);
      box.append(group);
    }
    $("checks-counts").textContent = counts.join(" · ");
  }

  function drawError(error) {
    $("error").hidden = !error;
    $("stage").classList.toggle("stale", Boolean(error && state.email));
    if (!error) return;
    $("error-title").textContent = error.title;
    const list = $("error-list");
    list.replaceChildren();
    for (const p of error.problems) {
      const li = el("li");
      if (p.where) li.append(el("code", null, p.where), document.createTextNode(" "));
      li.append(document.createTextNode((p.field ? p.field + ": " : "") + p.message));
      list.append(li);
    }
    $("error-hint").textContent = state.email
      ? "Below is the last version that rendered. This page updates by itself as soon as the file is fixed."
      : "This page updates by itself as soon as the file is fixed.";
  }

  function drawSend(send) {
    const n = send.recipients.length;
    $("send-recipients").textContent = n ? "To: " + send.recipients.join(", ") : "No reviewers.";
    const button = $("send-button");
    if (!button.dataset.busy) {
      button.disabled = !send.enabled;
      button.textContent = n === 1 ? "Send test to 1 reviewer" : `Send test to ${n} reviewers`;
    }
    $("send-hint").textContent = send.enabled ? `Sends ${send.detail}.` : send.reason;
    // What `newsletter send --all` would say now (the same preflight), once the checks ran.
    const all = send.all;
    $("send-all").textContent = !all ? "" : all.ready
      ? `Ready for subscribers: ${all.recipients} of ${all.active} would be sent ${all.where}.`
      : "Not ready for subscribers: " + all.problems.map((p) => p.message).join("; ") + ".";
  }

  function draw(s) {
    state = s;
    $("issue-file").textContent = s.issue_file;
    drawError(s.error);
    $("empty").hidden = Boolean(s.email);
    $("device").hidden = !s.email;
    if (s.email) {
      drawInbox(s.email);
      showHtml(view === "dark" ? s.email.html_dark : s.email.html);
      $("dark-hint").textContent = s.email.dark_hint || "";
      $("text-part").textContent = s.email.text;
      drawSize(s.email);
      renderId = s.render_id;
    }
    drawChecks(s.email ? s.checks : { state: "unavailable", message: "No render to check yet." });
    drawSend(s.send);
    $("status-text").textContent = `${s.error ? "Error" : "Live"} · updated ${s.updated}`;
    $("status").classList.toggle("error", Boolean(s.error));
  }

  // -- send test -----------------------------------------------------------------------------
  $("send-button").addEventListener("click", async () => {
    const button = $("send-button");
    const result = $("send-result");
    button.dataset.busy = "1";
    button.disabled = true;
    button.textContent = "Sending…";
    result.hidden = true;
    let ok = false, message;
    try {
      const response = await fetch("/send-test", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Preview-Token": token },
        body: JSON.stringify({ render_id: renderId }),
      });
      const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
      ok = response.ok && body.ok;
      message = body.message;
    } catch (e) {
      message = "The preview server did not answer: is it still running?";
    }
    result.className = "result " + (ok ? "ok" : "fail");
    result.textContent = message;
    result.hidden = false;
    delete button.dataset.busy;
    drawSend(state.send);
  });

  // -- live updates ----------------------------------------------------------------------------
  const status = $("status");
  function connect() {
    const source = new EventSource("/events");
    source.onopen = () => {
      status.classList.add("live"); status.classList.remove("down");
      $("status-text").textContent = `${state.error ? "Error" : "Live"} · updated ${state.updated}`;
    };
    source.onerror = () => {
      status.classList.remove("live"); status.classList.add("down");
      $("status-text").textContent = "Reconnecting… (is `newsletter preview` still running?)";
    };
    source.addEventListener("state", (event) => {
      const s = JSON.parse(event.data);
      if (s.run !== runId) { location.reload(); return; }  // a new server: new token
      if (s.seq === state.seq && shownHtml !== null) return;
      draw(s);
      status.classList.remove("flash"); void status.offsetWidth; status.classList.add("flash");
    });
  }

  draw(state);
  setView(view);
  connect();
})();
