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

const attacksField = schemaNamed("EvaluationSpec").properties?.attacks as { "x-attacks"?: Record<string, AttackDetails> } | undefined;

/** The attacks in the API's schema, in its order, for the evaluation form. */
export const ATTACKS = describeAttacks(fieldOf("EvaluationSpec", "attacks").choices ?? [], attacksField?.["x-attacks"] ?? {});
