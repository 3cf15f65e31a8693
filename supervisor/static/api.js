// The control API as the dashboard calls it: JSON in, JSON out, every failure an ApiError whose
// message is what the page shows (the API's own {"error": {code, message, field}} when it sent
// one). With API_TOKEN set the control endpoints answer 401 until the page sends the bearer
// token; the token lives in sessionStorage (this tab only) and is never put in a URL.

const TOKEN_KEY = "hlsdash.api_token";

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status; // HTTP status, 0 when the API could not be reached at all
    this.code = code;
    this.field = field;
  }

  /** One line for the page: "409 stream_exists: stream 'x' already exists (stream_id)". */
  describe() {
    const where = this.field ? ` (${this.field})` : "";
    const status = this.status ? `${this.status} ` : "";
    return `${status}${this.code}: ${this.message}${where}`;
  }
}

export class ApiClient {
  constructor(base) {
    this.base = base; // URL the API's paths are relative to
    this.onUnauthorized = () => {};
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  }

  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  async request(method, path, body = undefined) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let resp;
    try {
      resp = await fetch(new URL(path, this.base), {
        method,
        headers,
        cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "unreachable", `${method} ${path}: API unreachable (${err.message})`);
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (resp.ok) return data;
    const error = data?.error ?? {};
    const failure = new ApiError(
      resp.status,
      error.code ?? "http_error",
      error.message ?? `${method} ${path}: HTTP ${resp.status}`,
      error.field ?? null,
    );
    if (resp.status === 401) this.onUnauthorized(failure);
    throw failure;
  }

  listStreams() {
    return this.request("GET", "streams");
  }

  createStream(spec) {
    return this.request("POST", "streams", spec);
  }

  stopStream(streamId) {
    return this.request("DELETE", `streams/${encodeURIComponent(streamId)}`);
  }

  heartbeat(streamId) {
    return this.request("POST", `streams/${encodeURIComponent(streamId)}/heartbeat`);
  }
}
