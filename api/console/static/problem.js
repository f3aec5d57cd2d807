// A problem+json answer as the person reads it: status and title, the detail, and every
// error with its JSON path (`$.data.amount: ...`).
import { h } from "./dom.js";

export function problemBox(error) {
  const problem = (error && error.problem) || { title: String(error), detail: "" };
  const status = error && error.status ? `${error.status} ` : "";
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("strong", { class: "problem-title" }, `${status}${problem.title || "Error"}`),
    problem.detail ? h("p", { class: "problem-detail" }, problem.detail) : null,
    errors.length
      ? h(
          "ul",
          { class: "problem-errors" },
          errors.map((item) =>
            h(
              "li",
              null,
              h("code", { class: "problem-path" }, item.path || "$"),
              " ",
              item.message || item.code || "",
              item.code && item.message ? h("span", { class: "muted" }, ` (${item.code})`) : null,
            ),
          ),
        )
      : null,
  );
}

// What a refused request means for the person (the detail says which role is needed).
export function explain(error) {
  if (error && error.status === 403) {
    return h(
      "div",
      null,
      h("p", null, "Your key or token does not allow this."),
      problemBox(error),
    );
  }
  return problemBox(error);
}

// A local mistake (bad JSON in a field) shown the same way as the API's problems.
export function localProblem(title, path, message) {
  return { status: 0, problem: { title, errors: [{ path, message }] } };
}
