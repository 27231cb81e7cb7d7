/**
 * How the report page names and orders what the JSON report holds: pure functions, tested without a browser.
 */
import type { ChartData } from "../../charts/series";
import { ATTACKS, attackLabel, type Preset } from "./attacks";

const NORM_LABEL: Record<string, string> = { linf: "L∞", l2: "L2" };
const NORMS = ["linf", "l2"];

export function normLabel(norm: string): string {
  return NORM_LABEL[norm] ?? norm;
}

/** A check's title ("saturated loss") as the start of a sentence. */
export function capitalised(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

/** "A", "A and B", "A, B and C". */
export function listing(items: string[]): string {
  if (items.length <= 1) return items[0] ?? "no attack";
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

interface Interval {
  low: number;
  high: number;
}

export interface CurvePoint {
  attack: string;
  norm: string;
  epsilon: number;
  robust_accuracy: number;
  ci95: Interval;
  mean_adversarial_confidence: number;
  cumulative?: boolean;
}

export interface WorstCasePoint {
  norm: string;
  epsilon: number;
  robust_accuracy: number;
  ci95: Interval;
}

/**
 * What each attack's curve of one norm is called, in the order the attacks ran: its label, or for a
 * cascade's cumulative curve, every attack it counts ("after APGD-CE, APGD-T").
 */
export function seriesLabels(curves: CurvePoint[], norm: string): Map<string, string> {
  const labels = new Map<string, string>();
  const ran: string[] = [];
  for (const point of curves.filter((p) => p.norm === norm)) {
    if (labels.has(point.attack)) continue;
    ran.push(attackLabel(point.attack));
    labels.set(point.attack, point.cumulative ? `after ${ran.join(", ")}` : attackLabel(point.attack));
  }
  return labels;
}

export interface CurveRow {
  key: string;
  series: string;
  norm: string;
  epsilon: number;
  robustAccuracy: number;
  ci95: Interval;
  /** Mean confidence on the attacked inputs; the worst case has none of its own. */
  confidence: number | null;
  worstCase: boolean;
}

/** The rows of the curve table: per norm, each attack's points by ε, then the worst case of that norm's attacks. */
export function curveRows(curves: CurvePoint[], worstCase: WorstCasePoint[]): CurveRow[] {
  const byEpsilon = <T extends { epsilon: number }>(points: T[]) => [...points].sort((a, b) => a.epsilon - b.epsilon);
  return NORMS.flatMap((norm) => {
    const labels = seriesLabels(curves, norm);
    const attacks = [...labels.keys()];
    const perAttack = attacks.flatMap((attack) =>
      byEpsilon(curves.filter((p) => p.norm === norm && p.attack === attack)).map(
        (p): CurveRow => ({
          key: `${attack}-${norm}-${p.epsilon}`,
          series: labels.get(attack)!,
          norm,
          epsilon: p.epsilon,
          robustAccuracy: p.robust_accuracy,
          ci95: p.ci95,
          confidence: p.mean_adversarial_confidence,
          worstCase: false,
        }),
      ),
    );
    const worst = byEpsilon(worstCase.filter((w) => w.norm === norm)).map(
      (w): CurveRow => ({
        key: `worst-${norm}-${w.epsilon}`,
        series: `worst case of ${listing(attacks.map(attackLabel))}`,
        norm,
        epsilon: w.epsilon,
        robustAccuracy: w.robust_accuracy,
        ci95: w.ci95,
        confidence: null,
        worstCase: true,
      }),
    );
    return [...perAttack, ...worst];
  });
}

/** A chart's series named as the table names them, so a cumulative curve says what it counts. */
export function withSeriesLabels(chart: ChartData, curves: CurvePoint[], norm: string): ChartData {
  const labels = seriesLabels(curves, norm);
  return { ...chart, series: chart.series.map((series) => ({ ...series, label: labels.get(series.label) ?? series.label })) };
}

export interface CheckResult {
  passed: boolean;
}

/** The checks section's heading: how many of the checks that ran failed, or that none ran. */
export function checksVerdict(checks: CheckResult[]): string {
  if (checks.length === 0) return "Gradient-masking checks: none ran";
  const failed = checks.filter((check) => !check.passed).length;
  return failed > 0 ? `Gradient-masking checks: ${failed} of ${checks.length} failed` : `Gradient-masking checks: all ${checks.length} passed`;
}

/** What a preset runs, in words: its attacks per norm, in the order they run, and its settings. */
export function presetPlan(preset: Preset, norms: string[]): string {
  const byNorm = norms
    .map((norm) => {
      const attacks = (preset.attacks ?? []).filter((name) => ATTACKS.find((attack) => attack.name === name)?.norm === norm);
      return attacks.length > 0 ? `${listing(attacks.map(attackLabel))} (${normLabel(norm)})` : "";
    })
    .filter(Boolean);
  if (byNorm.length === 0) return "";
  const settings =
    preset.steps === undefined
      ? ""
      : `, with ${preset.steps} steps, ${preset.target_classes} target classes and ${preset.queries?.toLocaleString("en-US")} queries`;
  return `Runs ${byNorm.join("; ")}${settings}.`;
}
