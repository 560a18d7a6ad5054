// wharf's web view: the list of apps at /, one app's chain at /apps/<id>. Everything shown comes
// from this server's event stream (/events) as JSON; text is set as text, never as markup.
"use strict";

const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  return s < 90 ? `${s.toFixed(0)}s ago` : `${(s / 60).toFixed(0)} min ago`;
}

function showStatus(data) {
  document.getElementById("status").textContent = `read ${ago(data.read_at)}`;
  const error = document.getElementById("error");
  error.hidden = !data.error;
  error.textContent = data.error ? `Last read failed (showing the last good one): ${data.error}` : "";
}

function appHref(app) {
  return "/apps/" + app.replace(/^\//, "").split("/").map(encodeURIComponent).join("/");
}

function renderList(data) {
  const names = data.apps.length ? data.apps[0].links.map((l) => l.name) : [];
  const head = el("tr", {}, el("th", {}, "app"), ...names.map((n) => el("th", {}, n)), el("th", {}, "first broken"));
  const rows = data.apps.map((app) => el("tr", { "data-app": app.app, "data-ok": String(app.ok) },
    el("td", {}, el("a", { href: appHref(app.app) }, app.app)),
    ...app.links.map((l) => el("td", { class: `state state-${l.state}`, "data-link": l.name, "data-state": l.state,
      title: l.summary }, l.state, el("div", { class: "summary" }, l.summary))),
    el("td", {}, app.broken ? `${app.broken}: ${app.check || ""}` : "-")));
  main.replaceChildren(el("table", { id: "apps" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

function chart(history) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 900 220");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  const samples = history ? history.samples : [];
  const now = Date.now() / 1000, from = now - 3600;
  const x = (t) => 40 + ((t - from) / 3600) * 820;
  const maxRps = Math.max(1, ...samples.map((s) => s[1] || 0));
  const maxInst = Math.max(1, ...samples.map((s) => s[2]));
  const y = (v, max) => 200 - (v / max) * 180;
  const path = (points) => points.map((p, i) => `${i ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join("");
  const rps = samples.filter((s) => s[1] !== null).map((s) => [x(s[0]), y(s[1], maxRps)]);
  const inst = [];
  samples.forEach((s, i) => {
    if (i) inst.push([x(s[0]), inst[inst.length - 1][1]]);
    inst.push([x(s[0]), y(s[2], maxInst)]);
  });
  if (rps.length) add("path", { class: "rps", d: path(rps) });
  if (inst.length) add("path", { class: "instances", d: path(inst) });
  for (const d of history ? history.decisions : []) {
    add("line", { class: "decision", x1: x(d.at), x2: x(d.at), y1: 20, y2: 200 });
    add("title", {}, `${d.action} ${d.current} → ${d.target}: ${d.reason}`);
  }
  add("text", { x: 40, y: 14 }, `requests/s (max ${maxRps.toFixed(1)}, blue)`);
  add("text", { x: 420, y: 14 }, `instances (max ${maxInst}, green); autoscaler decisions dashed`);
  add("text", { x: 40, y: 216 }, "1 hour ago");
  add("text", { x: 830, y: 216 }, "now");
  return svg;
}

let shownVersions = null;

function loadDeploys(app, versions) {
  const key = JSON.stringify(versions);
  if (key === shownVersions) return;
  shownVersions = key;
  fetch("/api/deploys?app=" + encodeURIComponent(app)).then((r) => r.json()).then((rows) => {
    const box = document.getElementById("deploys");
    if (!box) return;
    if (!Array.isArray(rows)) { box.replaceChildren(rows.error || "not read"); return; }
    box.replaceChildren(el("table", {}, el("tr", {}, ...["version", "app", "what", "commit", "instances", "image"]
      .map((h) => el("th", {}, h))), ...rows.map((r) => el("tr", { "data-kind": r.kind }, el("td", {}, r.version),
      el("td", {}, r.app), el("td", {}, r.kind), el("td", {}, (r.commit || "-").slice(0, 12)),
      el("td", {}, r.instances), el("td", {}, r.image || "-")))));
  });
}

function renderDetail(data) {
  if (!data.trace) {
    main.replaceChildren(el("p", {}, `No app ${data.app} in Marathon.`));
    return;
  }
  const t = data.trace;
  const links = t.links.map((l) => el("div", { class: `link state-${l.state}`, "data-link": l.name, "data-state": l.state },
    el("b", {}, l.name), `${l.state}: ${l.summary}`,
    l.check ? el("div", { class: "check" }, `check: ${l.check}`) : null,
    el("details", {}, el("summary", {}, "evidence"), el("pre", {}, JSON.stringify(l.evidence, null, 2)))));
  const render = data.render;
  const rendered = render ? `${render.path}: written ${ago(render.written_at)}, applied ${ago(render.applied_at)}` +
    ` by ${render.how || "-"}` + (render.matches === false ? " — HAProxy runs an older config than the file" : "")
    : "no HAProxy config given (--haproxy-config)";
  const existing = document.getElementById("deploys");
  main.replaceChildren(
    el("h1", {}, t.app), el("p", { id: "verdict" }, t.ok ? "every link holds" : `broken at ${t.broken}: ${t.check || ""}`),
    el("div", { class: "chain", id: "chain" }, ...links),
    el("h2", {}, "Requests and instances, last hour"), chart(data.history),
    el("h2", {}, "Last render of HAProxy's config"), el("p", { id: "render" }, rendered),
    el("h2", {}, "Deploy history"), existing || el("div", { id: "deploys" }, "reading…"));
  const marathon = t.links.find((l) => l.name === "marathon");
  loadDeploys(t.app, marathon ? marathon.evidence.versions : null);
}

function start() {
  const path = decodeURIComponent(location.pathname);
  const app = path.startsWith("/apps/") ? "/" + path.slice("/apps/".length) : null;
  const source = new EventSource(app ? "/events?app=" + encodeURIComponent(app) : "/events");
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    showStatus(data);
    (app ? renderDetail : renderList)(data);
    document.body.dataset.version = data.version;
  };
  source.onerror = () => { document.getElementById("status").textContent = "reconnecting…"; };
  if (app) document.title = `wharf: ${app}`;
}

start();
