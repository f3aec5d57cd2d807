// A paged list (the inbox, instances, definitions): a table of the rows the API answers page
// by page, and a "More" button, shown while the API gives a cursor, that appends the next
// page. `query()` is the list's filters as they are when a page is asked for.
import { api, pageSize } from "./api.js";
import { h, table } from "./dom.js";
import { explain } from "./problem.js";

export function pagedList(ctx, { path, query = () => ({}), row, headers, empty }) {
  const element = h("div", { class: "list" });
  const more = h("button", { type: "button", hidden: true }, "More");
  let rows = null;
  let cursor = null;

  async function load(append) {
    const page = await api("GET", path, {
      query: { ...query(), limit: pageSize(), cursor: append ? cursor : "" },
    });
    cursor = page.next_cursor;
    const found = page.items.map(row);
    if (append && rows) {
      rows.append(...found);
    } else {
      const shown = table(headers, found, empty);
      rows = shown.querySelector("tbody");
      element.replaceChildren(shown);
    }
    more.hidden = !cursor;
  }

  // A failure after the first page is shown in the list's place (a 401: back to sign-in).
  const guarded = async (action) => {
    try {
      await action();
    } catch (error) {
      if (!ctx.refused(error)) element.replaceChildren(explain(error));
    }
  };
  more.addEventListener("click", () => guarded(() => load(true)));
  return {
    element,
    more,
    // The first page; a failure is the caller's (the view shows it in its place).
    first: () => load(false),
    // The first page again, for new filters.
    reload: () => guarded(() => load(false)),
  };
}
