// The tenant's definitions (latest version of each), read-only.
import { api, pageSize } from "./api.js";
import { append, badge, h, json, table, when } from "./dom.js";
import { explain } from "./problem.js";

export async function definitionsView(root, ctx) {
  const listArea = h("div", { class: "list" });
  const more = h("button", { type: "button", hidden: true }, "More");
  let rows = null;
  let cursor = null;
  async function load(append) {
    const page = await api("GET", "/v1/definitions", { query: { limit: pageSize(), cursor: append ? cursor : "" } });
    cursor = page.next_cursor;
    const found = page.items.map((d) =>
      h("tr", { "data-definition": d.name },
        h("td", { class: "definition-name" }, d.name),
        h("td", null, String(d.version)),
        h("td", null, d.enabled ? badge("enabled") : badge("disabled")),
        h("td", null, String((d.document.nodes || []).length)),
        h("td", null, when(d.created_at)),
        h("td", null, h("details", null, h("summary", null, "document"), json(d.document))),
      ),
    );
    if (append && rows) {
      rows.append(...found);
    } else {
      const shown = table(["Name", "Version", "Enabled", "Nodes", "Published", "Document"], found, "No definitions yet.");
      rows = shown.querySelector("tbody");
      listArea.replaceChildren(shown);
    }
    more.hidden = !cursor;
  }
  more.addEventListener("click", async () => {
    try {
      await load(true);
    } catch (error) {
      if (!ctx.refused(error)) listArea.replaceChildren(explain(error));
    }
  });
  append(root, h("h1", null, "Definitions"), h("p", { class: "muted" }, "The latest version of each definition (read-only)."), listArea, more);
  await load(false);
}
