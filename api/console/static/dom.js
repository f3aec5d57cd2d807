// Building elements from data without ever parsing it as HTML: every string child becomes a
// text node, every attribute is set with setAttribute (names come from this code, never
// from data). Nothing in the console parses markup (a unit test looks for the sinks).

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "value" || name === "checked" || name === "disabled") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

// Element.append, minus the empty children (the DOM's own would show "null").
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A definition list from [label, value] pairs (values: text or nodes; empty ones skipped).
export function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(h("dt", null, label), h("dd", null, value));
  }
  return dl;
}

export function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h(
    "table",
    null,
    h("thead", null, h("tr", null, headers.map((name) => h("th", null, name)))),
    h("tbody", null, rows),
  );
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || String(text)}` }, text);
}
