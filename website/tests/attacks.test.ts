import { describe, expect, it } from "vitest";

import { fieldOf, schemaNamed } from "../src/forms/schema";
import { ATTACKS, attackLabel, CUSTOM, DEFAULT_PRESET, describeAttacks, describePresets, PRESETS } from "../src/pages/evaluations/attacks";

describe("the attacks on the evaluation form", () => {
  it("are the API's, in its order, each with the label, norm and summary the API publishes", () => {
    // Given the API's OpenAPI document, then the form offers its attacks in the order of its enum
    expect(ATTACKS.map((attack) => attack.name)).toEqual(fieldOf("EvaluationSpec", "attacks").choices);
    // And each carries the words the API gives it
    expect(ATTACKS).toContainEqual({
      name: "fgsm",
      label: "FGSM",
      norm: "linf",
      summary: "one signed gradient step: fast, and a check on the others",
    });
    expect(ATTACKS.every((attack) => attack.norm && attack.summary)).toBe(true);
    expect(attackLabel("apgd_ce")).toBe("APGD-CE");
  });

  it("show an attack the API says nothing about by its name", () => {
    // Given an attack name without published details, then it is offered under that name alone
    expect(describeAttacks(["fgsm", "cw"], {})).toEqual([
      { name: "fgsm", label: "fgsm" },
      { name: "cw", label: "cw" },
    ]);
    expect(attackLabel("cw")).toBe("cw");
  });
});

describe("the presets on the evaluation form", () => {
  it("are the API's, the standard AutoAttack one first and the default, each with what it fixes", () => {
    // Given the API's OpenAPI document, then the form offers its presets in the order of its enum
    expect(PRESETS.map((preset) => preset.name)).toEqual(fieldOf("EvaluationSpec", "preset").choices);
    expect(DEFAULT_PRESET).toBe("autoattack");
    // And each carries the attacks and settings the API publishes in x-presets
    const published = (schemaNamed("EvaluationSpec") as { "x-presets": Record<string, object> })["x-presets"];
    for (const preset of PRESETS) expect(preset).toEqual({ name: preset.name, ...published[preset.name] });
    const standard = PRESETS.filter((preset) => preset.standard).map((preset) => preset.name);
    expect(standard).toEqual(["autoattack"]);
    // And custom, whose attacks the request chooses, is among them
    expect(PRESETS.map((preset) => preset.name)).toContain(CUSTOM);
  });

  it("show a preset the API says nothing about by its name", () => {
    expect(describePresets(["autoattack", "newer"], {})).toEqual([{ name: "autoattack" }, { name: "newer" }]);
  });
});
