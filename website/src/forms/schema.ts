/**
 * Form fields described by the API's own OpenAPI document: each field's type, default, limits and
 * help text come from the schema the orchestrator publishes, so the forms never drift from what
 * the API accepts. The API stays the judge; these checks only answer sooner.
 */
import openapi from "../../../docs/openapi/orchestrator.json";

interface JsonSchema {
  type?: string;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  maxLength?: number;
  default?: unknown;
  description?: string;
  title?: string;
  $ref?: string;
  discriminator?: { mapping: Record<string, string> };
}

const schemas = (openapi as unknown as { components: { schemas: Record<string, JsonSchema> } }).components.schemas;

export interface FieldSpec {
  name: string;
  label: string;
  type: "integer" | "number" | "boolean" | "string" | "array" | "object";
  nullable: boolean;
  required: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
  description?: string;
  choices?: string[];
  items?: FieldSpec;
}

export function schemaNamed(name: string): JsonSchema {
  const schema = schemas[name];
  if (!schema) throw new Error(`the API's OpenAPI document has no schema ${name}`);
  return schema;
}

function resolve(schema: JsonSchema): JsonSchema {
  return schema.$ref ? schemaNamed(schema.$ref.split("/").pop()!) : schema;
}

function specOf(name: string, raw: JsonSchema, required: boolean): FieldSpec {
  const variants = (raw.anyOf ?? [raw]).map(resolve);
  const nullable = variants.some((v) => v.type === "null");
  const schema = variants.find((v) => v.type !== "null") ?? {};
  const choices = schema.enum?.map(String) ?? schema.items?.enum?.map(String);
  return {
    name,
    label: raw.title ?? schema.title ?? name.replaceAll("_", " "),
    type: (schema.type ?? (schema.enum ? "string" : "object")) as FieldSpec["type"],
    nullable,
    required,
    minimum: schema.minimum,
    maximum: schema.maximum,
    exclusiveMinimum: schema.exclusiveMinimum,
    exclusiveMaximum: schema.exclusiveMaximum,
    default: raw.default ?? schema.default,
    description: raw.description ?? schema.description,
    choices,
    items: schema.items ? specOf(`${name}[]`, schema.items, true) : undefined,
  };
}

/**
 * Every property of an object schema. The published document sorts properties by name, so a form
 * names the order it reads best in; properties it does not name follow, so a new one still shows.
 */
export function fieldsOf(schemaName: string, order: string[] = []): FieldSpec[] {
  const schema = schemaNamed(schemaName);
  const fields = Object.entries(schema.properties ?? {}).map(([name, property]) =>
    specOf(name, property, schema.required?.includes(name) ?? false),
  );
  const rank = (field: FieldSpec) => (order.includes(field.name) ? order.indexOf(field.name) : order.length);
  return fields.sort((a, b) => rank(a) - rank(b));
}

export function fieldOf(schemaName: string, name: string): FieldSpec {
  const field = fieldsOf(schemaName).find((f) => f.name === name);
  if (!field) throw new Error(`schema ${schemaName} has no field ${name}`);
  return field;
}

const number = (value: number) => value.toLocaleString("en-US", { maximumFractionDigits: 6 });

/** "1 to 10,000 · default 10", for the hint under an input. */
export function limitsText(field: FieldSpec): string {
  const parts: string[] = [];
  const low =
    field.exclusiveMinimum !== undefined ? `more than ${number(field.exclusiveMinimum)}` : field.minimum !== undefined ? number(field.minimum) : undefined;
  const high =
    field.exclusiveMaximum !== undefined ? `less than ${number(field.exclusiveMaximum)}` : field.maximum !== undefined ? number(field.maximum) : undefined;
  if (low !== undefined && high !== undefined) {
    parts.push(field.exclusiveMinimum !== undefined ? `${low}, up to ${high}` : `${low} to ${high}`);
  } else if (low !== undefined) {
    parts.push(field.exclusiveMinimum !== undefined ? low : `at least ${low}`);
  } else if (high !== undefined) {
    parts.push(`at most ${high}`);
  }
  if (field.type === "integer") parts.push("whole number");
  if (field.default !== undefined && field.default !== null) parts.push(`default ${String(field.default)}`);
  else if (field.nullable && !field.required) parts.push("optional");
  return parts.join(" · ");
}

export type Parsed = { value: number | undefined } | { error: string };

/** A number typed into a field: undefined when left empty (the API's default applies). */
export function parseNumber(text: string, field: FieldSpec): Parsed {
  const trimmed = text.trim();
  if (trimmed === "") {
    return field.required ? { error: "is required" } : { value: undefined };
  }
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return { error: "must be a number" };
  if (field.type === "integer" && !Number.isInteger(value)) return { error: "must be a whole number" };
  if (field.minimum !== undefined && value < field.minimum) return { error: `must be at least ${number(field.minimum)}` };
  if (field.maximum !== undefined && value > field.maximum) return { error: `must be at most ${number(field.maximum)}` };
  if (field.exclusiveMinimum !== undefined && value <= field.exclusiveMinimum) {
    return { error: `must be more than ${number(field.exclusiveMinimum)}` };
  }
  if (field.exclusiveMaximum !== undefined && value >= field.exclusiveMaximum) {
    return { error: `must be less than ${number(field.exclusiveMaximum)}` };
  }
  return { value };
}

/** A comma-separated list of numbers ("0, 0.05, 0.1"), each checked against the item's limits. */
export function parseNumberList(text: string, field: FieldSpec): { value: number[] | undefined } | { error: string } {
  if (text.trim() === "") return { value: undefined };
  const values: number[] = [];
  for (const part of text.split(",")) {
    const parsed = parseNumber(part, { ...field.items!, required: true });
    if ("error" in parsed) return { error: `"${part.trim()}" ${parsed.error}` };
    values.push(parsed.value!);
  }
  return { value: values };
}

/** The layers the architecture spec allows, each with its fields, for the spec editor's reference. */
export function layerCatalogue(): { type: string; fields: FieldSpec[]; description?: string }[] {
  const layers = schemaNamed("ArchitectureSpec").properties?.layers?.items?.discriminator?.mapping ?? {};
  return Object.entries(layers)
    .map(([type, ref]) => {
      const name = ref.split("/").pop()!;
      return {
        type,
        description: schemaNamed(name).description,
        fields: fieldsOf(name).filter((field) => field.name !== "type"),
      };
    })
    .sort((a, b) => a.type.localeCompare(b.type));
}
