/**
 * Chart data from API objects: pure functions, tested without a browser.
 */
import type { Round } from "../api/queries";

export interface Series {
  label: string;
  values: (number | null)[];
  dashed?: boolean;
}

export interface ChartData {
  labels: number[];
  series: Series[];
}

/** Loss and accuracy of each completed round, in round order (the API lists rounds as stored). */
export function trainingCurves(rounds: Round[]): { loss: ChartData; accuracy: ChartData } {
  const completed = rounds.filter((round) => round.status === "completed").sort((a, b) => a.round - b.round);
  const labels = completed.map((round) => round.round);
  return {
    loss: { labels, series: [{ label: "training loss", values: completed.map((round) => round.loss) }] },
    accuracy: { labels, series: [{ label: "training accuracy", values: completed.map((round) => round.accuracy) }] },
  };
}

export interface CurvePoint {
  attack: string;
  norm: string;
  epsilon: number;
  robust_accuracy: number;
}

export interface WorstCasePoint {
  norm: string;
  epsilon: number;
  robust_accuracy: number;
}

/**
 * Robust accuracy against ε for one norm: a line per attack, plus the worst case over them, on one
 * shared ε axis. An attack not run at some ε leaves a gap there, not a guess.
 */
export function robustnessCurves(curves: CurvePoint[], worstCase: WorstCasePoint[], norm: string): ChartData {
  const points = curves.filter((point) => point.norm === norm);
  const labels = [...new Set([...points.map((p) => p.epsilon), ...worstCase.filter((w) => w.norm === norm).map((w) => w.epsilon)])].sort(
    (a, b) => a - b,
  );
  const attacks = [...new Set(points.map((point) => point.attack))];
  const valueAt = (found: { epsilon: number; robust_accuracy: number }[]) =>
    labels.map((epsilon) => found.find((point) => point.epsilon === epsilon)?.robust_accuracy ?? null);
  const series: Series[] = attacks.map((attack) => ({
    label: attack,
    values: valueAt(points.filter((point) => point.attack === attack)),
  }));
  const worst = worstCase.filter((point) => point.norm === norm);
  if (worst.length > 0) series.push({ label: "worst case", values: valueAt(worst), dashed: true });
  return { labels, series };
}
