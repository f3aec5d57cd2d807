// The API client: the person's key or token lives in sessionStorage (this tab only, gone
// when it closes) and goes out as `Authorization: Bearer ...`; an answer that is not 2xx
// becomes an ApiError carrying the problem+json body (title, detail, errors with paths).

const STORAGE_KEY = "waymark.console.credential";

export const credential = {
  get: () => sessionStorage.getItem(STORAGE_KEY),
  set: (value) => sessionStorage.setItem(STORAGE_KEY, value),
  clear: () => sessionStorage.removeItem(STORAGE_KEY),
};

// Rows per page of every list: 50, or `?page_size=N` in the console's address (1-500).
export function pageSize() {
  const asked = Number(new URLSearchParams(window.location.search).get("page_size"));
  return Number.isInteger(asked) && asked >= 1 && asked <= 500 ? asked : 50;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(method, path, { query, body } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json, application/problem+json" };
  const token = credential.get();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, {
      title: "The API could not be reached",
      detail: String(error && error.message ? error.message : error),
    });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { title: `HTTP ${response.status}`, detail: text.slice(0, 500) };
    }
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : {};
    if (!problem.title) problem.title = `HTTP ${response.status}`;
    throw new ApiError(response.status, problem);
  }
  return data;
}
