// People who approve: the tenant's task queue and one task, with its form and decisions.
import { api } from "./api.js";
import { append, badge, facts, h, shortId, when } from "./dom.js";
import { taskForm } from "./form.js";
import { pagedList } from "./list.js";
import { problemBox } from "./problem.js";

const filters = { status: "open", assignee: "", role: "", urgency: "" };
const STATUSES = ["open", "claimed", "completed", "cancelled"];
const URGENCIES = ["low", "normal", "high", "critical", "urgent", "overdue"];

const HEADERS = ["Task", "Kind", "Status", "Who", "Due", "Instance", "Created"];

export async function inboxView(root, ctx) {
  const list = pagedList(ctx, {
    path: "/v1/tasks",
    query: () => ({
      status: filters.status === "any" ? "" : filters.status,
      assignee: filters.assignee,
      role: filters.role,
      urgency: filters.urgency,
    }),
    row: taskRow,
    headers: HEADERS,
    empty: "No tasks match these filters.",
  });
  const form = filterForm(list.reload);
  append(root, h("h1", null, "Task inbox"), form, list.element, list.more);
  await list.first();
}

function filterForm(apply) {
  const status = h(
    "select",
    { id: "filter-status" },
    [...STATUSES, "any"].map((s) => h("option", { value: s }, s)),
  );
  status.value = filters.status;
  const urgency = h(
    "select",
    { id: "filter-urgency" },
    h("option", { value: "" }, "any"),
    URGENCIES.map((u) => h("option", { value: u }, u)),
  );
  urgency.value = filters.urgency;
  const assignee = h("input", { id: "filter-assignee", value: filters.assignee, placeholder: "user id" });
  const role = h("input", { id: "filter-role", value: filters.role, placeholder: "role" });
  return h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        Object.assign(filters, {
          status: status.value,
          urgency: urgency.value,
          assignee: assignee.value.trim(),
          role: role.value.trim(),
        });
        apply();
      },
    },
    h("label", { for: "filter-status" }, "Status"), status,
    h("label", { for: "filter-assignee" }, "Assignee"), assignee,
    h("label", { for: "filter-role" }, "Candidate role"), role,
    h("label", { for: "filter-urgency" }, "Urgency"), urgency,
    h("button", { type: "submit" }, "Apply"),
  );
}

function taskRow(task) {
  const who = [task.assignee ? `assignee ${task.assignee}` : null,
    task.roles && task.roles.length ? `roles ${task.roles.join(", ")}` : null,
    task.claimed_by ? `claimed by ${task.claimed_by}` : null].filter(Boolean).join("; ");
  return h(
    "tr",
    { "data-task": task.id },
    h("td", null, h("a", { href: `#/tasks/${encodeURIComponent(task.id)}`, class: "task-link" }, task.name || task.node_id)),
    h("td", null, task.kind),
    h("td", null, badge(task.status)),
    h("td", null, who),
    h("td", null, due(task)),
    h("td", null, h("a", { href: `#/instances/${encodeURIComponent(task.instance_id)}` }, `${task.definition} · ${shortId(task.instance_id)}`)),
    h("td", null, when(task.created_at)),
  );
}

function due(task) {
  if (!task.due_at) return h("span", null, badge(task.urgency || "normal"), " no due time");
  return h("span", null, badge(task.overdue ? "overdue" : task.urgency), " ", when(task.due_at));
}

// --- one task ------------------------------------------------------------------------------

export async function taskView(root, ctx, taskId) {
  const task = await api("GET", `/v1/tasks/${encodeURIComponent(taskId)}`);
  append(root, 
    h("p", null, h("a", { href: "#/inbox" }, "← Task inbox")),
    h("h1", null, task.name || task.node_id),
    facts([
      ["Status", badge(task.status)],
      ["Kind", task.kind],
      ["Node", task.node_id],
      ["Definition", task.definition],
      ["Instance", h("a", { href: `#/instances/${encodeURIComponent(task.instance_id)}` }, String(task.instance_id))],
      ["Assignee", task.assignee],
      ["Candidate roles", (task.roles || []).join(", ")],
      ["Claimed by", task.claimed_by],
      ["Due", task.due_at ? when(task.due_at) : "no due time (no SLA)"],
      ["Urgency", badge(task.urgency)],
      ["Overdue", task.overdue ? "yes: its SLA has passed" : "no"],
      ["Escalated", task.escalated_at ? h("span", null, when(task.escalated_at), ` to ${task.escalated_to || "?"}`) : null],
      ["Created", when(task.created_at)],
      ["Completed", task.completed_at ? h("span", null, when(task.completed_at), ` by ${task.completed_by || "?"}`) : null],
      ["Outcome", task.outcome],
      ["Task id", task.id],
    ]),
  );
  if (task.status === "open" || task.status === "claimed") {
    append(root, await actions(task, ctx));
  }
}

async function actions(task, ctx) {
  const problems = h("div", { class: "form-problems", "aria-live": "polite" });
  const show = (error) => {
    if (!ctx.refused(error)) problems.replaceChildren(problemBox(error));
  };
  const form = taskForm(task.form);
  const comment = h("textarea", { id: "task-comment", rows: 2 });
  const buttons = h("div", { class: "buttons" });

  async function run(path, body, message) {
    problems.replaceChildren();
    for (const b of buttons.querySelectorAll("button")) b.disabled = true;
    try {
      await api("POST", `/v1/tasks/${encodeURIComponent(task.id)}/${path}`, { body });
      ctx.flash(message);
      if (path === "claim" || path === "delegate") ctx.rerender();
      else ctx.go("#/inbox");
    } catch (error) {
      show(error);
    } finally {
      for (const b of buttons.querySelectorAll("button")) b.disabled = false;
    }
  }

  function complete(outcome) {
    let data;
    try {
      data = form.collect();
    } catch (error) {
      show(error);
      return;
    }
    const body = { data };
    if (outcome) body.outcome = outcome;
    if (comment.value.trim()) body.comment = comment.value.trim();
    run("complete", body, `Task “${task.name || task.node_id}” completed${outcome ? `: ${outcome}` : ""}.`);
  }

  if (task.status === "open") {
    buttons.append(
      h("button", { type: "button", class: "secondary", onclick: () => run("claim", {}, "Task claimed.") }, "Claim"),
    );
  }
  const assignee = h("input", { id: "delegate-to", placeholder: "user id" });
  const reason = h("input", { id: "withdraw-reason", placeholder: "reason (recorded)" });
  const others = h(
    "details",
    { class: "other-actions" },
    h("summary", null, "Delegate or withdraw"),
    h("div", { class: "confirm" },
      h("label", { for: "delegate-to" }, "Delegate to"), assignee,
      h("button", {
        type: "button",
        class: "secondary",
        onclick: () => run("delegate", { assignee: assignee.value.trim() }, `Task delegated to ${assignee.value.trim()}.`),
      }, "Delegate")),
    h("div", { class: "confirm" },
      h("label", { for: "withdraw-reason" }, "Withdraw reason"), reason,
      h("button", {
        type: "button",
        class: "reject",
        onclick: () => run("cancel", reason.value.trim() ? { reason: reason.value.trim() } : {}, "Task withdrawn."),
      }, "Withdraw task")),
  );
  if (task.kind === "approval") {
    buttons.append(
      h("button", { type: "button", class: "approve", onclick: () => complete("approved") }, "Approve"),
      h("button", { type: "button", class: "reject", onclick: () => complete("rejected") }, "Reject"),
    );
  } else {
    for (const outcome of await outcomesOf(task)) {
      buttons.append(h("button", { type: "button", class: "approve", onclick: () => complete(outcome) }, `Complete: ${outcome}`));
    }
  }
  return h(
    "section",
    { class: "task-actions" },
    h("h2", null, "Act on this task"),
    h(
      "form",
      { novalidate: true, onsubmit: (event) => event.preventDefault() },
      form.element,
      h("div", { class: "field" }, h("label", { for: "task-comment" }, "Comment"), comment),
      buttons,
    ),
    problems,
    others,
  );
}

// A user task's outcomes, from its definition's node (the first is the default).
async function outcomesOf(task) {
  try {
    const instance = await api("GET", `/v1/instances/${encodeURIComponent(task.instance_id)}`);
    const definition = await api("GET", `/v1/definitions/${encodeURIComponent(task.definition)}`, {
      query: { version: instance.version },
    });
    const node = (definition.document.nodes || []).find((n) => n.id === task.node_id);
    if (node && Array.isArray(node.outcomes) && node.outcomes.length) return node.outcomes.map(String);
  } catch {
    // the outcomes are a convenience: without them the default outcome is offered
  }
  return ["completed"];
}
