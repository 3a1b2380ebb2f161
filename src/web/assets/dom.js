// Small DOM helpers: elements built from data with text nodes only (never innerHTML, so no
// text from the log can become markup), SVG elements, and readable names for ids.

const SVG = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === "") continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An HTML element with attributes (`on*` functions become listeners) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element, likewise. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

const names = new Map();

/** Registers display names (actor and issue labels) known from the views. */
export function learnName(id, label) {
  if (id && label) names.set(id, label);
}

/** A readable name for an id: its registered name if known, else the id without its prefix. */
export function name(id) {
  if (id === null || id === undefined) return "";
  if (names.has(id)) return names.get(id);
  const s = String(id);
  const i = s.indexOf(":");
  return i > 0 ? s.slice(i + 1).replace(/-/g, " ") : s;
}
