// The tenant's definitions (latest version of each), read-only.
import { append, badge, h, json, when } from "./dom.js";
import { pagedList } from "./list.js";

export async function definitionsView(root, ctx) {
  const list = pagedList(ctx, {
    path: "/v1/definitions",
    row: (d) =>
      h("tr", { "data-definition": d.name },
        h("td", { class: "definition-name" }, d.name),
        h("td", null, String(d.version)),
        h("td", null, d.enabled ? badge("enabled") : badge("disabled")),
        h("td", null, String((d.document.nodes || []).length)),
        h("td", null, when(d.created_at)),
        h("td", null, h("details", null, h("summary", null, "document"), json(d.document))),
      ),
    headers: ["Name", "Version", "Enabled", "Nodes", "Published", "Document"],
    empty: "No definitions yet.",
  });
  append(root, h("h1", null, "Definitions"), h("p", { class: "muted" }, "The latest version of each definition (read-only)."), list.element, list.more);
  await list.first();
}
