/**
 * The schema editor's drafts of dataset attributes, and the request body they become.
 *
 * A draft keeps every input as typed, whatever the type, so switching an attribute from int to
 * category and back loses nothing. Only the fields the chosen type takes are sent; whether the
 * values make sense (min below max, a normal inside its range) is for the API to say, beside the
 * field, in the words of cohort/datasets/schema.py.
 */
import type { Schemas } from "../api/client";
import { fieldOf } from "./schema";

export type Attribute = Schemas["Attribute"];
export type AttributeType = Attribute["type"];

export const ATTRIBUTE_TYPES = fieldOf("Attribute", "type").choices as AttributeType[];

export interface AttributeDraft {
  key: number;
  name: string;
  type: AttributeType;
  min: string;
  max: string;
  /** One choice per line. */
  choices: string;
  /** A string attribute takes choices or a length range. */
  stringMode: "length" | "choices";
  distribution: "uniform" | "normal";
  mean: string;
  std: string;
  nullRatio: string;
  decimals: string;
}

let nextKey = 1;

export function blankAttribute(type: AttributeType = "float"): AttributeDraft {
  return {
    key: nextKey++,
    name: "",
    type,
    min: "",
    max: "",
    choices: "",
    stringMode: "length",
    distribution: "uniform",
    mean: "",
    std: "",
    nullRatio: "",
    decimals: "",
  };
}

/** A number as typed: empty stays out of the body; anything else is sent for the API to judge. */
function numeric(text: string): number | string | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : trimmed;
}

function choicesOf(text: string): string[] {
  return text
    .split("\n")
    .map((choice) => choice.trim())
    .filter((choice) => choice !== "");
}

export function takesRange(draft: AttributeDraft): boolean {
  return draft.type === "int" || draft.type === "float" || (draft.type === "string" && draft.stringMode === "length");
}

export function takesChoices(draft: AttributeDraft): boolean {
  return draft.type === "category" || (draft.type === "string" && draft.stringMode === "choices");
}

export function takesDistribution(draft: AttributeDraft): boolean {
  return draft.type === "int" || draft.type === "float";
}

/** The attribute as the API takes it: only what its type uses. */
export function toAttribute(draft: AttributeDraft): Record<string, unknown> {
  const body: Record<string, unknown> = { name: draft.name.trim(), type: draft.type };
  if (takesRange(draft)) {
    body.min = numeric(draft.min);
    body.max = numeric(draft.max);
  }
  if (takesChoices(draft)) body.choices = choicesOf(draft.choices);
  if (takesDistribution(draft) && draft.distribution === "normal") {
    body.distribution = { kind: "normal", mean: numeric(draft.mean), std: numeric(draft.std) };
  }
  if (draft.type === "float" && draft.decimals.trim() !== "") body.decimals = numeric(draft.decimals);
  if (draft.nullRatio.trim() !== "") body.null_ratio = numeric(draft.nullRatio);
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

/** A draft from an attribute as the API gives it back (or as pasted in as JSON). */
export function fromAttribute(attribute: Record<string, unknown>): AttributeDraft {
  const draft = blankAttribute((attribute.type as AttributeType) ?? "float");
  const text = (value: unknown) => (value === undefined || value === null ? "" : String(value));
  const distribution = (attribute.distribution ?? {}) as Record<string, unknown>;
  const choices = Array.isArray(attribute.choices) ? attribute.choices.map(String) : undefined;
  return {
    ...draft,
    name: text(attribute.name),
    min: text(attribute.min),
    max: text(attribute.max),
    choices: choices ? choices.join("\n") : "",
    stringMode: choices ? "choices" : "length",
    distribution: distribution.kind === "normal" ? "normal" : "uniform",
    mean: text(distribution.mean),
    std: text(distribution.std),
    nullRatio: text(attribute.null_ratio),
    decimals: text(attribute.decimals),
  };
}

/** Attributes pasted as JSON: a list, or a registration with an "attributes" list. */
export function parseAttributesJson(text: string): AttributeDraft[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new Error(`That is not JSON: ${(error as Error).message}`);
  }
  const list = Array.isArray(document) ? document : (document as { attributes?: unknown } | null)?.attributes;
  if (!Array.isArray(list) || list.length === 0) {
    throw new Error('Paste a list of attributes, or an object with an "attributes" list.');
  }
  return list.map((item, index) => {
    if (typeof item !== "object" || item === null) throw new Error(`Attribute ${index + 1} is not an object.`);
    return fromAttribute(item as Record<string, unknown>);
  });
}

/** One line describing an attribute's values, for the dataset's schema table. */
export function describeValues(attribute: Record<string, unknown>): string {
  const choices = attribute.choices as string[] | undefined;
  if (choices) return choices.length > 6 ? `${choices.slice(0, 6).join(", ")}, … (${choices.length})` : choices.join(", ");
  if (attribute.type === "bool") return "true or false";
  if (attribute.min === undefined) return "—";
  const range = attribute.type === "string" ? `${attribute.min} to ${attribute.max} characters` : `${attribute.min} to ${attribute.max}`;
  const distribution = attribute.distribution as { kind?: string; mean?: number; std?: number } | undefined;
  return distribution?.kind === "normal" ? `${range}, normal(mean ${distribution.mean}, std ${distribution.std})` : range;
}
