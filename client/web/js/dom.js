// Small helpers to build elements from text, never from HTML strings: user text only ever
// reaches the page through textContent (or text nodes), so markup in a comment stays text.

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "readOnly", "selected"]);

/**
 * h("button", {class: "link", testid: "reply-link", onclick: fn}, "Reply")
 *
 * props: `class` (string or array), `text` (textContent), `testid` (data-testid), `data`
 * (dataset entries), `on<event>` functions (listeners), the DOM properties in PROPERTIES, and
 * any other attribute (set with setAttribute; `true` sets it empty, null/false/undefined skip).
 * Children: nodes, strings (text nodes), arrays, null (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "testid") {
      el.dataset.testid = value;
    } else if (key === "data") {
      for (const [name, v] of Object.entries(value)) {
        if (v !== null && v !== undefined && v !== false) el.dataset[name] = String(v);
      }
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace an element's children (nodes or text). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set text without touching the node when it is already right (no needless mutations). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

export function show(el, visible) {
  if (el) el.hidden = !visible;
}

/**
 * A comment body as paragraphs: one `<p dir="auto">` per paragraph (blank lines separate
 * paragraphs; single line breaks stay inside a paragraph and show, through CSS pre-wrap).
 */
export function paragraphs(text) {
  return String(text ?? "")
    .replace(/\r\n?/g, "\n")
    .split(/\n[ \t]*\n+/)
    .map((part) => part.replace(/^\n+|\s+$/g, ""))
    .filter((part) => part.trim() !== "")
    .map((part) => h("p", { dir: "auto", text: part }));
}

/** Find the element, or throw naming what is missing from the page. */
export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`missing element ${selector}`);
  return el;
}

export function byTestId(testid, root = document) {
  return root.querySelector(`[data-testid="${testid}"]`);
}

/**
 * Run `change` (which adds or removes content) without moving what the reader looks at: the
 * first element matching `selector` that is in view keeps its place on screen. Browsers' own
 * scroll anchoring is switched off in CSS (overflow-anchor: none), so this is the one rule.
 */
export function keepPosition(selector, change) {
  if (window.scrollY <= 0) {
    change();
    return;
  }
  const anchors = [];
  for (const el of document.querySelectorAll(selector)) {
    const rect = el.getBoundingClientRect();
    if (rect.height === 0) continue;
    if (rect.bottom > 0) {
      anchors.push([el, rect.top]);
      if (anchors.length >= 4 || rect.top > window.innerHeight) break;
    }
  }
  change();
  for (const [el, top] of anchors) {
    if (!el.isConnected || el.getBoundingClientRect().height === 0) continue;
    const delta = el.getBoundingClientRect().top - top;
    if (Math.abs(delta) >= 0.5) window.scrollBy(0, delta);
    return;
  }
}

/** Say something to screen readers through an aria-live region (the same text twice too). */
export class Announcer {
  constructor(el) {
    this.el = el;
    this.timer = null;
  }

  say(text) {
    clearTimeout(this.timer);
    this.el.textContent = "";
    // A fresh text node after a tick, so that repeating the same words is announced again.
    this.timer = setTimeout(() => {
      this.el.textContent = text;
    }, 60);
  }
}

export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** localStorage that never throws (private mode, quota, disabled storage). */
export const store = {
  get(key) {
    try {
      const raw = localStorage.getItem(key);
      return raw === null ? null : JSON.parse(raw);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch {
      return false;
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      /* storage unavailable: nothing to remove */
    }
  },
};

/**
 * Put `elements` into `container` in this order, moving only what is out of place (a node that
 * keeps its place keeps its focus), and removing children that are not listed.
 */
export function reconcile(container, elements) {
  const wanted = new Set(elements);
  for (const child of [...container.children]) if (!wanted.has(child)) child.remove();
  let cursor = container.firstElementChild;
  for (const el of elements) {
    if (el === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      container.insertBefore(el, cursor);
    }
  }
}
