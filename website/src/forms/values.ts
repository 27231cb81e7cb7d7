/** Turning what was typed into a request body, and the API's problems back into field errors. */
import { ApiError, labelOf } from "../api/errors";
import { type FieldSpec, parseNumber, parseNumberList } from "./schema";

export type Typed = Record<string, string>;

/** What each field shows before anything is typed: empty numbers (the placeholder shows the default). */
export function initialValues(fields: FieldSpec[]): Typed {
  return Object.fromEntries(
    fields.map((field) => [field.name, field.type === "boolean" ? String(field.default === true) : ""]),
  );
}

/**
 * The body for these fields: numbers parsed, empty ones left out so the API's default applies.
 * Returns the errors instead when any field cannot be sent as typed.
 */
export function collect(
  fields: FieldSpec[],
  typed: Typed,
): { body: Record<string, unknown>; errors: Record<string, string> } {
  const body: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const text = typed[field.name] ?? "";
    if (field.type === "boolean") {
      body[field.name] = text === "true";
      continue;
    }
    const parsed =
      field.type === "array" ? parseNumberList(text, field) : field.type === "integer" || field.type === "number" ? parseNumber(text, field) : { value: text || undefined };
    if ("error" in parsed) errors[field.name] = parsed.error;
    else if (parsed.value !== undefined) body[field.name] = parsed.value;
  }
  return { body, errors };
}

/**
 * The API's problems under `prefix` ("server_config"), by the field they name; the problems about
 * the whole object or about nothing on this form come back in `general`, already labelled.
 */
export function problemsUnder(
  error: unknown,
  prefix: string,
  fieldNames: string[],
): { byField: Record<string, string>; general: string[] } {
  const byField: Record<string, string> = {};
  const general: string[] = [];
  if (!(error instanceof ApiError)) return { byField, general };
  for (const problem of prefix ? error.about(prefix) : error.problems) {
    const rest = prefix ? problem.path.slice(prefix.length + 1) : problem.path;
    const name = rest.split(".")[0] ?? "";
    if (fieldNames.includes(name)) byField[name] = byField[name] ? `${byField[name]}; ${problem.message}` : problem.message;
    else general.push(problem.path ? `${labelOf(problem.path)}: ${problem.message}` : problem.message);
  }
  return { byField, general };
}

/** The problems no prefix on the form claims, as sentences. */
export function unclaimed(error: unknown, prefixes: string[]): string[] {
  if (!(error instanceof ApiError)) return error ? [String((error as Error).message ?? error)] : [];
  const left = error.problems.filter((p) => !prefixes.some((prefix) => p.path === prefix || p.path.startsWith(`${prefix}.`)));
  if (error.problems.length === 0) return [error.message];
  return left.map((p) => (p.path ? `${labelOf(p.path)}: ${p.message}` : p.message));
}

/** Each problem at or below `prefix`, labelled by where below it ("layer 2, kernel size: ..."). */
export function messagesUnder(error: unknown, prefix: string): string[] {
  if (!(error instanceof ApiError)) return [];
  return error.about(prefix).map((problem) => {
    const rest = problem.path.slice(prefix.length + 1);
    return rest ? `${labelOf(rest)}: ${problem.message}` : problem.message;
  });
}
