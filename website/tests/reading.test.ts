import { describe, expect, it } from "vitest";

import { robustnessCurves } from "../src/charts/series";
import { PRESETS } from "../src/pages/evaluations/attacks";
import { checksVerdict, type CurvePoint, curveRows, listing, presetPlan, withSeriesLabels, type WorstCasePoint } from "../src/pages/evaluations/reading";

const ci = { low: 0.1, high: 0.9 };
const point = (attack: string, norm: string, epsilon: number, robust: number, cumulative: boolean): CurvePoint => ({
  attack,
  norm,
  epsilon,
  robust_accuracy: robust,
  ci95: ci,
  mean_adversarial_confidence: 0.8,
  cumulative,
});
const worst = (norm: string, epsilon: number, robust: number): WorstCasePoint => ({ norm, epsilon, robust_accuracy: robust, ci95: ci });

describe("the curve table", () => {
  it("names a cascade's curves by every attack they count, and ends each norm with its worst case", () => {
    // Given a cascade of APGD-CE then APGD-T in L∞, and APGD-CE L2 alone, listed as the report lists them
    const curves = [
      point("apgd_t", "linf", 0.1, 0.4, true),
      point("apgd_ce", "linf", 0.1, 0.5, true),
      point("apgd_ce", "linf", 0, 0.9, true),
      point("apgd_t", "linf", 0, 0.9, true),
      point("apgd_ce_l2", "l2", 0.5, 0.6, true),
    ];
    const worstCase = [worst("l2", 0.5, 0.6), worst("linf", 0.1, 0.4), worst("linf", 0, 0.9)];

    // When the table's rows are made
    const rows = curveRows(curves, worstCase).map((row) => [row.series, row.norm, row.epsilon, row.robustAccuracy, row.confidence]);

    // Then each attack's points come in ε order, named for what they count, and the worst case closes each norm
    expect(rows).toEqual([
      ["after APGD-T", "linf", 0, 0.9, 0.8],
      ["after APGD-T", "linf", 0.1, 0.4, 0.8],
      ["after APGD-T, APGD-CE", "linf", 0, 0.9, 0.8],
      ["after APGD-T, APGD-CE", "linf", 0.1, 0.5, 0.8],
      ["worst case of APGD-T and APGD-CE", "linf", 0, 0.9, null],
      ["worst case of APGD-T and APGD-CE", "linf", 0.1, 0.4, null],
      ["after APGD-CE L2", "l2", 0.5, 0.6, 0.8],
      ["worst case of APGD-CE L2", "l2", 0.5, 0.6, null],
    ]);
  });

  it("names the curve of an attack run on every sample by the attack alone, in the chart too", () => {
    const curves = [point("fgsm", "linf", 0.1, 0.6, false), point("pgd_linf", "linf", 0.1, 0.4, false)];
    expect(curveRows(curves, []).map((row) => row.series)).toEqual(["FGSM", "PGD"]);
    const chart = withSeriesLabels(robustnessCurves(curves, [worst("linf", 0.1, 0.4)], "linf"), curves, "linf");
    expect(chart.series.map((series) => series.label)).toEqual(["FGSM", "PGD", "worst case"]);
  });
});

describe("the words of the report page", () => {
  it("say how many checks failed, and never that all passed when none ran", () => {
    expect(checksVerdict([])).toBe("Gradient-masking checks: none ran");
    expect(checksVerdict([{ passed: true }, { passed: true }])).toBe("Gradient-masking checks: all 2 passed");
    expect(checksVerdict([{ passed: true }, { passed: false }])).toBe("Gradient-masking checks: 1 of 2 failed");
  });

  it("list attacks as a sentence does", () => {
    expect(listing(["A"])).toBe("A");
    expect(listing(["A", "B", "C"])).toBe("A, B and C");
  });

  it("say what a preset runs in the threat models chosen", () => {
    const autoattack = PRESETS.find((preset) => preset.name === "autoattack")!;
    expect(presetPlan(autoattack, ["linf"])).toBe(
      "Runs APGD-CE, APGD-T, FMN and Square (L∞), with 100 steps, 9 target classes and 5,000 queries.",
    );
    expect(presetPlan(autoattack, ["linf", "l2"])).toContain("; APGD-CE L2, APGD-T L2, FMN L2 and Square L2 (L2), with");
    expect(presetPlan({ name: "newer" }, ["linf"])).toBe("");
  });
});
