// DOM helpers of the GUI: every server or user string becomes a text node (textContent), never markup.

export const $ = (id) => document.getElementById(id);

export function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

export function safeHttpUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

export function fmt(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
    ? value.toExponential(3)
    : value.toPrecision(4);
}

export function fmtTime(ms) {
  return typeof ms === "number" ? new Date(ms).toISOString().slice(0, 19).replace("T", " ") : "–";
}

export function runLink(runId) {
  return el("a", runId, { href: "#/runs/" + encodeURIComponent(runId) });
}

/** Replaces the body rows of ``table``; a cell is a string, a number (right-aligned) or a DOM node. */
export function fillTable(table, rows) {
  table.tBodies[0].replaceChildren(
    ...rows.map((cells) => {
      const tr = el("tr");
      cells.forEach((cell, i) => {
        const numeric = i > 0 && typeof cell === "number";
        const td = el("td", cell instanceof Node ? null : cell, numeric ? { class: "num" } : {});
        if (cell instanceof Node) td.append(cell);
        tr.append(td);
      });
      return tr;
    }),
  );
}

export function headRow(table, names) {
  const tr = el("tr");
  for (const name of names) tr.append(el("th", name));
  table.tHead.replaceChildren(tr);
}

let focusNext = false; // the next page shown takes the focus (its heading): set when the user changed route

/** The next page shown takes the focus, so that keyboard and screen reader users start on it. */
export function focusNextPage() {
  focusNext = true;
}

/** Shows the one section ``id`` of <main> (none for "") and hides the others and the loading line. */
export function show(id) {
  $("loading").hidden = true;
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== id;
  const heading = id && focusNext ? $(id).querySelector("h2") : null;
  if (!heading) return;
  focusNext = false;
  heading.tabIndex = -1;
  heading.focus();
}

/** Hides the current page and says that the next one is loading (until ``show`` shows it). */
export function loading() {
  show("");
  $("loading").hidden = false;
}

/** Disables ``button`` and shows ``words`` on it while a request is pending; ``done()`` restores it. */
export function busy(button, words) {
  const text = button.textContent;
  button.disabled = true;
  button.textContent = words;
  button.setAttribute("aria-busy", "true");
  return {
    done() {
      button.disabled = false;
      button.textContent = text;
      button.removeAttribute("aria-busy");
    },
  };
}

export function notice(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

/** Sets a message element's text; hides it when there is none. */
export function say(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

// --- the life of one page: a route entered, left when the next one starts ---------------------

let generation = 0;
let leaving = [];

/** Leaves the current page (runs what it asked to run on leaving); returns the new page's alive(). */
export function enter() {
  for (const fn of leaving.splice(0)) fn();
  const mine = ++generation;
  return () => mine === generation;
}

/** ``fn`` runs when the current page is left (charts destroyed, Blob URLs revoked). */
export function onLeave(fn) {
  leaving.push(fn);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
