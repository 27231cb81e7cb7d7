import { describe, expect, it } from "vitest";

import { fieldOf } from "../src/forms/schema";
import { ATTACKS, describeAttacks } from "../src/pages/evaluations/attacks";

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
  });

  it("show an attack the API says nothing about by its name", () => {
    // Given an attack name without published details, then it is offered under that name alone
    expect(describeAttacks(["fgsm", "cw"], {})).toEqual([
      { name: "fgsm", label: "fgsm" },
      { name: "cw", label: "cw" },
    ]);
  });
});
