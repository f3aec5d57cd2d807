// The console's shell: sign-in, the identity the API reports, navigation by `#/...` and
// the views (inbox.js, instances.js, definitions.js). A 401 anywhere returns to sign-in
// with the API's reason; every other failure is shown where it happened.
import { ApiError, api, credential } from "./api.js";
import { definitionsView } from "./definitions.js";
import { append, h } from "./dom.js";
import { inboxView, taskView } from "./inbox.js";
import { instanceView, instancesView } from "./instances.js";
import { explain, problemBox } from "./problem.js";

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const identity = document.getElementById("identity");
const signOutButton = document.getElementById("sign-out");

let flashed = null;
let generation = 0;
let whoami = null;

const ROUTES = {
  inbox: (root, ctx) => inboxView(root, ctx),
  tasks: (root, ctx, id) => taskView(root, ctx, id),
  instances: (root, ctx, id) => (id ? instanceView(root, ctx, id) : instancesView(root, ctx)),
  definitions: (root, ctx) => definitionsView(root, ctx),
};

const ctx = {
  flash(message) {
    flashed = message;
  },
  go(hash) {
    if (window.location.hash === hash) render();
    else window.location.hash = hash;
  },
  rerender: () => render(),
  // A 401: the credentials no longer work; back to sign-in, saying why. True when handled.
  refused(error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(error);
      return true;
    }
    return false;
  },
};

function parseHash() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/");
  const name = ROUTES[parts[0]] ? parts[0] : "inbox";
  return { name, id: parts[1] ? decodeURIComponent(parts[1]) : null };
}

async function render() {
  if (!credential.get()) {
    showSignIn(null);
    return;
  }
  if (!whoami) {
    await signIn(credential.get());
    return;
  }
  const mine = ++generation;
  const { name, id } = parseHash();
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.view === (name === "tasks" ? "inbox" : name));
  }
  const root = h("section", { class: `view view-${name}` });
  if (flashed) {
    append(root, h("p", { class: "flash", role: "status" }, flashed));
    flashed = null;
  }
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    await ROUTES[name](root, ctx, id);
  } catch (error) {
    if (ctx.refused(error)) return;
    append(root, explain(error));
  }
  if (mine === generation) main.replaceChildren(root);
}

function showSignIn(error) {
  nav.hidden = true;
  identity.hidden = true;
  signOutButton.hidden = true;
  const input = h("input", {
    id: "credential",
    type: "password",
    autocomplete: "off",
    placeholder: "API key or bearer token (JWT)",
    required: true,
  });
  const problems = h("div", { class: "form-problems", id: "sign-in-problems" });
  if (error) {
    problems.append(
      h("p", null, error.status === 401 ? "Sign-in failed: the API did not accept this key or token." : "Sign-in failed."),
      problemBox(error),
    );
  }
  const form = h(
    "form",
    {
      class: "sign-in",
      onsubmit: (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (value) signIn(value);
      },
    },
    h("h1", null, "Sign in"),
    h("p", { class: "muted" }, "Paste an API key (WAYMARK_API_KEYS) or an OIDC bearer token. It is kept in this tab only (sessionStorage) and sent as Authorization: Bearer …"),
    h("label", { for: "credential" }, "Key or token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    problems,
  );
  main.replaceChildren(form);
  input.focus();
}

async function signIn(value) {
  credential.set(value);
  try {
    whoami = await api("GET", "/v1/whoami");
  } catch (error) {
    credential.clear();
    whoami = null;
    showSignIn(error instanceof ApiError ? error : new ApiError(0, { title: String(error) }));
    return;
  }
  identity.replaceChildren(
    h("span", { class: "who" }, whoami.name),
    " · tenant ",
    h("strong", { id: "identity-tenant" }, whoami.tenant),
    " · ",
    h("span", { id: "identity-roles" }, whoami.roles.join(", ") || "no role"),
  );
  identity.hidden = false;
  nav.hidden = false;
  signOutButton.hidden = false;
  render();
}

function signOut(error) {
  credential.clear();
  whoami = null;
  generation++;
  showSignIn(error || null);
}

signOutButton.addEventListener("click", () => {
  signOut(null);
  if (window.location.hash) history.replaceState(null, "", window.location.pathname);
});
window.addEventListener("hashchange", render);
render();
