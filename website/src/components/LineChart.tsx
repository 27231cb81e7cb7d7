/**
 * A line chart drawn by Chart.js. The canvas is an image to assistive technology, so it carries a
 * label, and every page that shows one also shows its numbers in a table.
 */
import {
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { useEffect, useRef } from "react";

import type { Series } from "../charts/series";

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Legend, Tooltip);

// Distinguishable for the common colour-vision deficiencies (Okabe and Ito).
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"];

interface Props {
  label: string;
  xTitle: string;
  yTitle: string;
  labels: (string | number)[];
  series: Series[];
  yMin?: number;
  yMax?: number;
}

export function LineChart({ label, xTitle, yTitle, labels, series, yMin, yMax }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<"line">>(null);

  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new Chart(canvas.current, {
      type: "line",
      data: { labels: [], datasets: [] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: xTitle } },
          y: { title: { display: true, text: yTitle }, min: yMin, max: yMax },
        },
      },
    });
    return () => chart.current?.destroy();
  }, [xTitle, yTitle, yMin, yMax]);

  useEffect(() => {
    const current = chart.current;
    if (!current) return;
    current.data.labels = labels;
    current.data.datasets = series.map((line, index) => ({
      label: line.label,
      data: line.values,
      borderColor: COLOURS[index % COLOURS.length],
      backgroundColor: COLOURS[index % COLOURS.length],
      borderDash: line.dashed ? [6, 4] : undefined,
      spanGaps: true,
    }));
    current.update();
  }, [labels, series]);

  return (
    <figure className="chart">
      <div className="chart-canvas">
        <canvas ref={canvas} role="img" aria-label={label} />
      </div>
      <figcaption>{label}</figcaption>
    </figure>
  );
}
