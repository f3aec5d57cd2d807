// People who operate: instances (filters, paging), one instance (variables, bookmarks,
// incidents with retry/skip, history, cancel).
import { api } from "./api.js";
import { append, badge, facts, h, json, shortId, table, when } from "./dom.js";
import { pagedList } from "./list.js";
import { localProblem, problemBox } from "./problem.js";

const filters = { status: "", definition: "" };
const STATUSES = ["running", "suspended", "incident", "completed", "failed", "cancelled"];
const HEADERS = ["Instance", "Definition", "Status", "Correlation id", "Created", "Updated", "Ended"];
const OPEN = new Set(["running", "suspended", "incident"]);

export async function instancesView(root, ctx) {
  const list = pagedList(ctx, {
    path: "/v1/instances",
    query: () => ({ ...filters }),
    row: instanceRow,
    headers: HEADERS,
    empty: "No instances match these filters.",
  });

  const status = h(
    "select",
    { id: "filter-instance-status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s }, s)),
  );
  status.value = filters.status;
  const definition = h("input", { id: "filter-definition", value: filters.definition, placeholder: "definition name" });
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        filters.status = status.value;
        filters.definition = definition.value.trim();
        list.reload();
      },
    },
    h("label", { for: "filter-instance-status" }, "Status"), status,
    h("label", { for: "filter-definition" }, "Definition"), definition,
    h("button", { type: "submit" }, "Apply"),
  );
  append(root, h("h1", null, "Instances"), form, list.element, list.more);
  await list.first();
}

function instanceRow(item) {
  return h(
    "tr",
    { "data-instance": item.id },
    h("td", null, h("a", { href: `#/instances/${encodeURIComponent(item.id)}`, class: "instance-link" }, shortId(item.id))),
    h("td", null, `${item.definition} v${item.version}`),
    h("td", null, badge(item.status)),
    h("td", null, item.correlation_id || ""),
    h("td", null, when(item.created_at)),
    h("td", null, when(item.updated_at)),
    h("td", null, when(item.ended_at)),
  );
}

// --- one instance --------------------------------------------------------------------------

export async function instanceView(root, ctx, instanceId) {
  const path = `/v1/instances/${encodeURIComponent(instanceId)}`;
  const [view, incidents, history] = await Promise.all([
    api("GET", path),
    api("GET", "/v1/incidents", { query: { instance_id: instanceId, status: "open", limit: 100 } }),
    api("GET", `${path}/history`, { query: { limit: 500 } }),
  ]);
  const problems = h("div", { class: "form-problems", "aria-live": "polite" });
  const showProblem = (error) => {
    if (!ctx.refused(error)) problems.replaceChildren(problemBox(error));
  };
  const act = async (url, body, message) => {
    problems.replaceChildren();
    try {
      await api("POST", url, { body });
      ctx.flash(message);
      ctx.rerender();
    } catch (error) {
      showProblem(error);
    }
  };

  append(root, 
    h("p", null, h("a", { href: "#/instances" }, "← Instances")),
    h("h1", null, `${view.definition} v${view.version} `, badge(view.status, `status ${view.status}`)),
    facts([
      ["Instance id", String(view.id)],
      ["Status", h("span", { id: "instance-status" }, view.status)],
      ["Definition", `${view.definition} version ${view.version}`],
      ["Correlation id", view.correlation_id],
      ["Started by", startedBy(view.started_by)],
      ["Created", when(view.created_at)],
      ["Updated", when(view.updated_at)],
      ["Ended", when(view.ended_at)],
      ["SLA due", when(view.sla_due_at)],
      ["Late", view.late === true ? "yes" : view.late === false ? "no" : null],
      ["Parent", view.parent ? JSON.stringify(view.parent) : null],
    ]),
    OPEN.has(view.status) ? cancelBox(path, act) : null,
    problems,
    view.error ? h("section", null, h("h2", null, "Error"), json(view.error)) : null,
    h("section", null, h("h2", null, "Variables"), h("div", { id: "instance-variables" }, json(view.variables))),
    h("section", null, h("h2", null, "Input"), json(view.input)),
    view.output ? h("section", null, h("h2", null, "Output"), json(view.output)) : null,
    h("section", { id: "bookmarks" }, h("h2", null, "Waiting at (open bookmarks)"), bookmarks(path, view.bookmarks || [], act, showProblem)),
    h("section", { id: "incidents" }, h("h2", null, "Incidents"), incidentList(path, incidents.items, act, showProblem)),
    h("section", { id: "history" }, h("h2", null, "History"), historyTable(history.items),
      history.next_cursor ? h("p", { class: "muted" }, "Only the first 500 events are shown.") : null),
  );
}

function startedBy(origin) {
  if (!origin || typeof origin !== "object") return null;
  return Object.entries(origin)
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([name, value]) => `${name} ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(", ");
}

function cancelBox(path, act) {
  const reason = h("input", { id: "cancel-reason", placeholder: "reason (recorded)" });
  const confirm = h("div", { class: "confirm", hidden: true },
    h("label", { for: "cancel-reason" }, "Reason"), reason,
    h("button", {
      type: "button",
      class: "reject",
      onclick: () => act(`${path}/cancel`, reason.value.trim() ? { reason: reason.value.trim() } : {}, "Instance cancelled."),
    }, "Confirm cancel"),
  );
  return h("section", { class: "instance-actions" },
    h("button", { type: "button", class: "secondary", onclick: () => { confirm.hidden = !confirm.hidden; } }, "Cancel instance…"),
    confirm,
  );
}

function bookmarks(path, items, act, showProblem) {
  return table(
    ["Node", "Kind", "Status", "Due", "Detail", "Act"],
    items.map((b) =>
      h("tr", { "data-bookmark": b.id },
        h("td", null, b.node_id),
        h("td", null, b.task_kind ? `${b.kind} (${b.task_kind})` : b.kind),
        h("td", null, b.status),
        h("td", null, when(b.due_at)),
        h("td", null, [b.event_type && `event ${b.event_type}`, b.correlation && `correlation ${b.correlation}`,
          b.roles && b.roles.length && `roles ${b.roles.join(", ")}`, b.attempt && `attempt ${b.attempt}`,
          b.last_error && `last error: ${b.last_error}`].filter(Boolean).join("; ")),
        h("td", { class: "recover" }, b.kind === "wait" ? resumeBox(path, b, act, showProblem) : null),
      ),
    ),
    "Not waiting anywhere.",
  );
}

// A `wait` is resumed with a payload (a task is decided in the inbox, a timer fires).
function resumeBox(path, bookmark, act, showProblem) {
  const payload = h("textarea", { rows: 2, class: "json-input", placeholder: "JSON payload (optional)" });
  const send = () => {
    const raw = payload.value.trim();
    let value;
    try {
      value = raw ? JSON.parse(raw) : undefined;
    } catch (error) {
      showProblem(localProblem("Not valid JSON", "$.payload", error.message));
      return;
    }
    const url = `${path}/bookmarks/${encodeURIComponent(bookmark.id)}/resume`;
    act(url, value === undefined ? {} : { payload: value }, `Resumed ${bookmark.node_id}.`);
  };
  return [payload, h("button", { type: "button", onclick: send }, "Resume")];
}

function incidentList(path, items, act, showProblem) {
  return table(
    ["Node", "Error", "Raised", "Recover"],
    items.map((incident) => {
      const text = h("textarea", { rows: 2, class: "json-input", placeholder: "JSON: variables to merge (retry) or the result (skip)" });
      const reason = h("input", { placeholder: "reason (recorded)" });
      const parsed = (target) => {
        const raw = text.value.trim();
        if (!raw) return undefined;
        try {
          return JSON.parse(raw);
        } catch (error) {
          throw localProblem("Not valid JSON", target, error.message);
        }
      };
      const send = (kind) => {
        try {
          const value = parsed(kind === "retry" ? "$.variables" : "$.result");
          const body = { incident_id: incident.id };
          if (reason.value.trim()) body.reason = reason.value.trim();
          if (value !== undefined) body[kind === "retry" ? "variables" : "result"] = value;
          act(`${path}/${kind}`, body, kind === "retry" ? "Node retried." : "Node skipped.");
        } catch (error) {
          showProblem(error);
        }
      };
      return h("tr", { "data-incident": incident.id },
        h("td", null, `${incident.node_id} (${incident.node_type})`),
        h("td", null, json(incident.error)),
        h("td", null, when(incident.raised_at)),
        h("td", { class: "recover" }, text, reason,
          h("button", { type: "button", onclick: () => send("retry") }, "Retry"),
          h("button", { type: "button", class: "secondary", onclick: () => send("skip") }, "Skip")),
      );
    }),
    "No open incidents.",
  );
}

function historyTable(items) {
  return table(
    ["#", "Event", "When", "Data"],
    items.map((e) =>
      h("tr", { class: "event" },
        h("td", null, String(e.version)),
        h("td", { class: "event-type" }, e.type),
        h("td", null, when(e.timestamp)),
        h("td", null, h("details", null, h("summary", null, "data"), json(e.data))),
      ),
    ),
    "No events.",
  );
}
