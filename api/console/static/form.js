// Inputs for a task's form (a JSON Schema object): one field per property of a simple type
// (string, number, integer, boolean, enum), a JSON textarea for anything else, or one JSON
// textarea for the whole data when the schema lists no properties. The browser does not
// validate (`novalidate`): the API does, and its problem names the field's JSON path.
import { h } from "./dom.js";
import { localProblem } from "./problem.js";

let counter = 0;

export function taskForm(schema) {
  const properties = schema && typeof schema === "object" ? schema.properties : null;
  if (!properties || typeof properties !== "object" || !Object.keys(properties).length) {
    return jsonData(schema);
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  // Required fields first, in the schema's `required` order (a list keeps its order; the
  // stored `properties` object may not), then the others.
  const names = [
    ...[...required].filter((name) => name in properties),
    ...Object.keys(properties).filter((name) => !required.has(name)),
  ];
  const fields = names.map((name) => field(name, properties[name] || {}, required.has(name)));
  return {
    element: h("div", { class: "form-fields" }, fields.map((f) => f.element)),
    collect() {
      const data = {};
      for (const f of fields) {
        const value = f.read();
        if (value !== undefined) data[f.name] = value;
      }
      return data;
    },
  };
}

function jsonData(schema) {
  const id = `field-${++counter}`;
  const area = h("textarea", { id, rows: 6, class: "json-input", spellcheck: "false" }, "{}");
  return {
    element: h(
      "div",
      { class: "form-fields" },
      h("label", { for: id }, "Data (JSON object)"),
      area,
      schema ? h("details", null, h("summary", null, "Form schema"), schemaText(schema)) : null,
    ),
    collect() {
      const text = area.value.trim();
      if (!text) return {};
      let value;
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw localProblem("The data is not valid JSON", "$.data", error.message);
      }
      if (!value || typeof value !== "object" || Array.isArray(value)) {
        throw localProblem("The data must be a JSON object", "$.data", "an object: {...}");
      }
      return value;
    },
  };
}

function schemaText(schema) {
  return h("pre", { class: "json" }, JSON.stringify(schema, null, 2));
}

function field(name, prop, isRequired) {
  const id = `field-${++counter}`;
  const title = typeof prop.title === "string" && prop.title ? prop.title : name;
  const label = h("label", { for: id }, title, isRequired ? h("span", { class: "required" }, " *") : null);
  const hint = typeof prop.description === "string" ? h("small", { class: "muted" }, prop.description) : null;
  const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
  let input;
  let read;
  if (Array.isArray(prop.enum)) {
    input = h(
      "select",
      { id, name },
      h("option", { value: "" }, "—"),
      prop.enum.map((choice, index) =>
        h("option", { value: String(index) }, typeof choice === "string" ? choice : JSON.stringify(choice)),
      ),
    );
    if (prop.default !== undefined) {
      const index = prop.enum.findIndex((c) => JSON.stringify(c) === JSON.stringify(prop.default));
      if (index >= 0) input.value = String(index);
    }
    read = () => (input.value === "" ? undefined : prop.enum[Number(input.value)]);
  } else if (type === "boolean") {
    input = h("input", { id, name, type: "checkbox", checked: prop.default === true });
    read = () => input.checked;
  } else if (type === "number" || type === "integer") {
    input = h("input", {
      id,
      name,
      type: "number",
      step: type === "integer" ? "1" : "any",
      value: typeof prop.default === "number" ? String(prop.default) : "",
    });
    read = () => {
      const text = input.value.trim();
      return text === "" ? undefined : Number(text);
    };
  } else if (type === "string") {
    const long = prop.maxLength === undefined || prop.maxLength > 200;
    input = long && prop.format === undefined
      ? h("textarea", { id, name, rows: 2 }, typeof prop.default === "string" ? prop.default : "")
      : h("input", {
          id,
          name,
          type: prop.format === "date" ? "date" : prop.format === "email" ? "email" : "text",
          value: typeof prop.default === "string" ? prop.default : "",
        });
    read = () => (input.value === "" ? undefined : input.value);
  } else {
    input = h(
      "textarea",
      { id, name, rows: 3, class: "json-input", spellcheck: "false" },
      prop.default === undefined ? "" : JSON.stringify(prop.default, null, 2),
    );
    read = () => {
      const text = input.value.trim();
      if (!text) return undefined;
      try {
        return JSON.parse(text);
      } catch (error) {
        throw localProblem(`${title} is not valid JSON`, `$.data.${name}`, error.message);
      }
    };
  }
  return { name, read, element: h("div", { class: "field" }, label, input, hint) };
}
