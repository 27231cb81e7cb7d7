import { fieldOf, schemaNamed } from "../../forms/schema";

/** What the API publishes about each attack, in the `x-attacks` of the spec's `attacks` field. */
export interface AttackDetails {
  label: string;
  norm: "linf" | "l2";
  summary: string;
}

export type Attack = { name: string; label: string } & Partial<AttackDetails>;

/** Each attack with what the API says about it; one it says nothing about still shows, by name. */
export function describeAttacks(names: string[], details: Partial<Record<string, AttackDetails>>): Attack[] {
  return names.map((name) => ({ name, label: name, ...details[name] }));
}

/** What the API publishes about each preset, in the spec's `x-presets`: the attacks and settings it fixes. */
export interface PresetDetails {
  attacks: string[];
  steps: number;
  restarts: number;
  target_classes: number;
  queries: number;
  standard: boolean;
  summary: string;
}

export type Preset = { name: string } & Partial<PresetDetails>;

/** Each preset with what the API says about it; one it says nothing about still shows, by name. */
export function describePresets(names: string[], details: Partial<Record<string, PresetDetails>>): Preset[] {
  return names.map((name) => ({ name, ...details[name] }));
}

const attacksField = schemaNamed("EvaluationSpec").properties?.attacks as { "x-attacks"?: Record<string, AttackDetails> } | undefined;
const presetDetails = (schemaNamed("EvaluationSpec") as { "x-presets"?: Record<string, PresetDetails> })["x-presets"];

/** The attacks in the API's schema, in its order, for the evaluation form. */
export const ATTACKS = describeAttacks(fieldOf("EvaluationSpec", "attacks").choices ?? [], attacksField?.["x-attacks"] ?? {});

/** The presets in the API's schema, in its order, and the one a request gets when it names none. */
export const PRESETS = describePresets(fieldOf("EvaluationSpec", "preset").choices ?? [], presetDetails ?? {});
export const DEFAULT_PRESET = String(fieldOf("EvaluationSpec", "preset").default ?? PRESETS[0]?.name ?? "");

/** The one preset whose attacks and settings the request chooses. */
export const CUSTOM = "custom";

/** What people read for an attack: its label, or its name if the API gives none. */
export function attackLabel(name: string): string {
  return ATTACKS.find((attack) => attack.name === name)?.label ?? name;
}
