/**
 * What the API says when it refuses a request, turned into words a person can act on.
 *
 * The orchestrator answers every error with one body (its `ErrorBody`, docs/api.md):
 * `{"detail": "message", "errors": [{loc, msg, type}]}`. `detail` is always a sentence, which often
 * starts with the field it is about ("spec.dataset: ..."); `errors` names each field a request
 * failed validation on. API Gateway has a shape of its own, `{"message": "..."}`. Forms show each
 * problem beside the field it concerns.
 */

export interface Problem {
  /** Dotted path of the field inside the request body ("server_config.min_reports"), "" if none. */
  path: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problems: Problem[];

  constructor(status: number, message: string, problems: Problem[] = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problems = problems;
  }

  /** The problems about one field (its path or anything below it). */
  about(path: string): Problem[] {
    return this.problems.filter((p) => p.path === path || p.path.startsWith(`${path}.`));
  }
}

interface ValidationItem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

// Pydantic's wording, in the words a form speaks.
const REWRITES: [RegExp, string][] = [
  [/^Value error, /, ""],
  [/^Assertion failed, /, ""],
  [/^Input should be less than or equal to (.+)$/, "must be at most $1"],
  [/^Input should be greater than or equal to (.+)$/, "must be at least $1"],
  [/^Input should be greater than (.+)$/, "must be more than $1"],
  [/^Input should be less than (.+)$/, "must be less than $1"],
  [/^Input should be a valid integer.*$/, "must be a whole number"],
  [/^Input should be a valid number.*$/, "must be a number"],
  [/^Input should be a valid boolean.*$/, "must be true or false"],
  [/^Input should be a finite number$/, "must be a finite number"],
  [/^Input should be (.+)$/, "must be $1"],
  [/^List should have at least (\d+) items? after validation, not (\d+)$/, "needs at least $1, not $2"],
  [/^List should have at most (\d+) items? after validation, not (\d+)$/, "takes at most $1, not $2"],
  [/^String should have at least (\d+) characters?$/, "needs at least $1 characters"],
  [/^String should have at most (\d+) characters?$/, "takes at most $1 characters"],
];

export function plainWords(item: Pick<ValidationItem, "msg" | "type">): string {
  if (item.type === "missing") return "is required";
  if (item.type === "extra_forbidden") return "is not a field the API accepts";
  let message = item.msg;
  for (const [pattern, replacement] of REWRITES) {
    message = message.replace(pattern, replacement);
  }
  return message;
}

/** "body.server_config.min_reports" → "server_config.min_reports"; list indexes stay as numbers. */
export function pathOf(loc: (string | number)[]): string {
  const parts = loc[0] === "body" || loc[0] === "query" || loc[0] === "path" ? loc.slice(1) : loc;
  return parts.map(String).join(".");
}

const FIELD_PREFIX = /^([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*): (.+)$/s;

/** The problems in an error body, whichever of the API's shapes it has. */
export function problemsOf(body: unknown): Problem[] {
  if (typeof body !== "object" || body === null) return [];
  const { detail, errors, message } = body as { detail?: unknown; errors?: unknown; message?: unknown };
  if (Array.isArray(errors) && errors.length > 0) {
    return errors
      .filter((item): item is ValidationItem => typeof item === "object" && item !== null && "msg" in item)
      .map((item) => ({ path: pathOf(item.loc ?? []), message: plainWords(item) }));
  }
  const text = typeof detail === "string" ? detail : typeof message === "string" ? message : undefined;
  if (text === undefined) return [];
  const field = FIELD_PREFIX.exec(text);
  return field ? [{ path: field[1]!, message: field[2]! }] : [{ path: "", message: text }];
}

const STATUS_ADVICE: Record<number, string> = {
  401: "Your session has ended: sign in again.",
  403: "Your account may not do this. Scientists and app developers see different pages.",
  404: "It does not exist, or it is not yours.",
  409: "It is not ready for that yet.",
  413: "What you sent is too large.",
  429: "Too many requests: wait a moment and try again.",
  503: "The service is busy: try again in a moment.",
};

/**
 * One sentence for a failed request: the API's own words where it gave some, and when to try again
 * where the API said (`Retry-After`, in seconds, on a 429 or a 503).
 */
export function errorFromResponse(status: number, body: unknown, retryAfter?: string | null): ApiError {
  const problems = problemsOf(body);
  const summary =
    problems.length === 1 && problems[0]!.path === ""
      ? problems[0]!.message
      : problems.length > 0
        ? problems.map((p) => (p.path ? `${labelOf(p.path)}: ${p.message}` : p.message)).join("; ")
        : (STATUS_ADVICE[status] ?? `The API answered ${status}. Try again; if it persists, check the service's logs.`);
  const seconds = Number(retryAfter);
  const wait = retryAfter && Number.isInteger(seconds) && seconds > 0;
  return new ApiError(status, wait ? `${summary.replace(/\.$/, "")}; try again in ${seconds} s.` : summary, problems);
}

/** "server_config.min_reports" → "min reports"; "attributes.2.max" → "attribute 3, max". */
export function labelOf(path: string): string {
  const parts = path.split(".");
  const words: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const next = parts[i + 1];
    if (next !== undefined && /^\d+$/.test(next)) {
      words.push(`${part.replace(/s$/, "").replaceAll("_", " ")} ${Number(next) + 1}`);
      i++;
    } else if (!part.endsWith("_config") || i === parts.length - 1) {
      words.push(part.replaceAll("_", " "));
    }
  }
  return words.join(", ");
}

export function unreachable(url: string): ApiError {
  return new ApiError(
    0,
    `Cohort's API at ${url} cannot be reached: check your connection, or whether the platform is running.`,
  );
}

/** A message for anything thrown, for the places that show errors. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
