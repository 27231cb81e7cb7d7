import { describe, expect, it } from "vitest";

import type { Round } from "../src/api/queries";
import { robustnessCurves, trainingCurves } from "../src/charts/series";
import { previewRows } from "../src/pages/datasets/samplePreview";

const round = (number: number, status: string, loss: number | null, accuracy: number | null): Round => ({
  round: number,
  status,
  attempt: 1,
  reports: 3,
  samples: 300,
  loss,
  accuracy,
  opened_at: "2026-12-03T10:00:00+00:00",
  closed_at: null,
  failures: [],
  devices: 3,
});

describe("trainingCurves", () => {
  it("plots completed rounds in round order, and leaves the open one out", () => {
    const rounds = [round(2, "completed", 0.5, 0.8), round(1, "completed", 1.2, 0.6), round(3, "open", null, null)];
    const { loss, accuracy } = trainingCurves(rounds);
    expect(loss.labels).toEqual([1, 2]);
    expect(loss.series[0]!.values).toEqual([1.2, 0.5]);
    expect(accuracy.series[0]!.values).toEqual([0.6, 0.8]);
  });
});

describe("robustnessCurves", () => {
  const curves = [
    { attack: "fgsm", norm: "linf", epsilon: 0.1, robust_accuracy: 0.5 },
    { attack: "fgsm", norm: "linf", epsilon: 0, robust_accuracy: 0.9 },
    { attack: "pgd_linf", norm: "linf", epsilon: 0.1, robust_accuracy: 0.3 },
    { attack: "pgd_l2", norm: "l2", epsilon: 0.5, robust_accuracy: 0.4 },
  ];
  const worst = [
    { norm: "linf", epsilon: 0, robust_accuracy: 0.9 },
    { norm: "linf", epsilon: 0.1, robust_accuracy: 0.25 },
  ];

  it("draws a line per attack of the norm on a shared, sorted ε axis, with gaps where an attack did not run", () => {
    const chart = robustnessCurves(curves, worst, "linf");
    expect(chart.labels).toEqual([0, 0.1]);
    expect(chart.series.map((s) => [s.label, s.values])).toEqual([
      ["fgsm", [0.9, 0.5]],
      ["pgd_linf", [null, 0.3]],
      ["worst case", [0.9, 0.25]],
    ]);
    expect(chart.series.at(-1)!.dashed).toBe(true);
  });

  it("keeps the norms apart", () => {
    expect(robustnessCurves(curves, worst, "l2").series.map((s) => s.label)).toEqual(["pgd_l2"]);
  });
});

describe("previewRows", () => {
  it("drops a last line cut short by the range request", () => {
    const text = "a,b\n1,2\n3,4\n5,";
    expect(previewRows(text, false, 10)).toEqual({ columns: ["a", "b"], rows: [["1", "2"], ["3", "4"]] });
  });

  it("keeps every line of a file that came whole, up to the limit", () => {
    expect(previewRows("a\n1\n2\n3\n", true, 2).rows).toEqual([["1"], ["2"]]);
  });

  it("reads quoted values with commas", () => {
    expect(previewRows('name\n"Lima, Peru"\n', true, 5).rows).toEqual([["Lima, Peru"]]);
  });
});
