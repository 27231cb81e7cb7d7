import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link, useParams } from "react-router";

import type { Schemas } from "../../api/client";
import { fetchJson } from "../../api/transfers";
import { type Evaluation, useEvaluation } from "../../api/queries";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { robustnessCurves } from "../../charts/series";
import { DownloadButton, ErrorNotice, Loading, PageTitle, percent, ProgressBar, significant, Status, TableBox, when } from "../../components/common";
import { LineChart } from "../../components/LineChart";

type Report = Schemas["EvaluationReport"];
const NORM_LABEL: Record<string, string> = { linf: "L∞", l2: "L2" };

export function EvaluationPage() {
  return (
    <ForRole role="scientist">
      <EvaluationDetail />
    </ForRole>
  );
}

function EvaluationDetail() {
  const { evaluationId = "" } = useParams();
  const api = useApi();
  const evaluation = useEvaluation(evaluationId);
  if (evaluation.isPending) return <Loading what="the evaluation" />;
  if (evaluation.isError) return <ErrorNotice error={evaluation.error} retry={() => void evaluation.refetch()} />;
  const data = evaluation.data;
  const reportLink = (format: "html" | "json") =>
    api.call((c) =>
      c.GET("/v1/evaluations/{evaluation_id}/report", {
        params: { path: { evaluation_id: data.evaluation_id }, query: { format } },
      }),
    );
  return (
    <>
      <PageTitle title={`Robustness evaluation ${data.evaluation_id.slice(0, 8)}`}>
        {data.status === "completed" && (
          <>
            <DownloadButton label="Download HTML report" link={() => reportLink("html")} />
            <DownloadButton label="Download JSON" link={() => reportLink("json")} />
          </>
        )}
      </PageTitle>
      <p className="muted">
        <Link to={`/models/${data.model_id}`}>Model</Link>
        {data.job_id ? (
          <>
            {" "}
            as trained by <Link to={`/jobs/${data.job_id}`}>job {data.job_id.slice(0, 8)}</Link>
          </>
        ) : (
          " with its uploaded weights"
        )}
        ; {data.spec.samples.toLocaleString()} samples of {data.spec.dataset === "digits" ? "the built-in digits" : "your evaluation set"},
        attacks {data.spec.attacks.join(", ")}; queued {when(data.created_at)}.
      </p>
      <section aria-labelledby="progress-title" className="card" aria-live="polite">
        <h2 id="progress-title">
          <Status value={data.status} /> {progressLine(data)}
        </h2>
        {data.status !== "failed" && <ProgressBar value={data.progress} label="Attack work done" />}
        {data.status === "failed" && (
          <div role="alert" className="notice error">
            <p>
              <strong>The evaluation failed:</strong> {data.status_reason}
            </p>
          </div>
        )}
      </section>
      {data.status === "completed" && <ReportView evaluation={data} link={() => reportLink("json")} />}
    </>
  );
}

function progressLine(evaluation: Evaluation): string {
  if (evaluation.status === "queued") return "waiting for the evaluator";
  if (evaluation.status === "running") return `attacking: ${Math.round(evaluation.progress * 100)}% done`;
  if (evaluation.status === "completed") return `finished ${when(evaluation.updated_at)}`;
  return "";
}

function ReportView({ evaluation, link }: { evaluation: Evaluation; link: () => Promise<{ url: string }> }) {
  const report = useQuery({
    queryKey: ["evaluations", evaluation.evaluation_id, "report"],
    staleTime: Infinity, // a completed evaluation's report never changes
    queryFn: async () => fetchJson<Report>((await link()).url),
  });
  if (report.isPending) return <Loading what="the report" />;
  if (report.isError) return <ErrorNotice error={report.error} retry={() => void report.refetch()} />;
  return <ReportBody report={report.data} />;
}

function ReportBody({ report }: { report: Report }) {
  const norms = useMemo(() => [...new Set(report.curves.map((point) => point.norm))], [report.curves]);
  const charts = useMemo(
    () => Object.fromEntries(norms.map((norm) => [norm, robustnessCurves(report.curves, report.worst_case, norm)])),
    [norms, report.curves, report.worst_case],
  );
  const { clean, headline } = report;
  const headlineNorm = NORM_LABEL[headline.norm] ?? headline.norm;
  return (
    <article aria-labelledby="report-title" className="report">
      <h2 id="report-title">Report</h2>
      <div className="headline">
        <div>
          <p className="big">{percent(clean.accuracy)}</p>
          <p>clean accuracy</p>
          <small className="muted">
            95% CI {percent(clean.ci95.low)} to {percent(clean.ci95.high)}; {clean.correct.toLocaleString()} of {clean.total.toLocaleString()}
          </small>
        </div>
        <div>
          <p className="big">{percent(headline.robust_accuracy)}</p>
          <p>
            robust accuracy at ε = {headline.epsilon} ({headlineNorm})
          </p>
          <small className="muted">the worst case over every attack of this norm</small>
        </div>
      </div>
      <section aria-labelledby="flags-title">
        <h3 id="flags-title">Gradient masking</h3>
        {report.flags.length === 0 ? (
          <p>No sign of gradient masking: the attacks behaved as sound attacks do.</p>
        ) : (
          report.flags.map((flag) => (
            <div key={flag.code} role="alert" className="notice warning">
              <p>
                <strong>{flag.code.replaceAll("_", " ")}:</strong> {flag.message}
              </p>
            </div>
          ))
        )}
      </section>
      <section aria-labelledby="curves-title">
        <h3 id="curves-title">Robust accuracy against ε</h3>
        <div className="grid">
          {norms.map((norm) => (
            <LineChart
              key={norm}
              label={`Robust accuracy against ε (${NORM_LABEL[norm] ?? norm}), per attack and in the worst case`}
              xTitle={`ε (${NORM_LABEL[norm] ?? norm})`}
              yTitle="robust accuracy"
              labels={charts[norm]!.labels}
              series={charts[norm]!.series}
              yMin={0}
              yMax={1}
            />
          ))}
        </div>
        <TableBox label="Robust accuracy per attack and ε">
          <thead>
            <tr>
              <th scope="col">Attack</th>
              <th scope="col">Norm</th>
              <th scope="col">ε</th>
              <th scope="col">Robust accuracy</th>
              <th scope="col">95% CI</th>
              <th scope="col">Confidence on attacked inputs</th>
            </tr>
          </thead>
          <tbody>
            {report.curves.map((point) => (
              <tr key={`${point.attack}-${point.norm}-${point.epsilon}`}>
                <td>{point.attack}</td>
                <td>{NORM_LABEL[point.norm] ?? point.norm}</td>
                <td>{point.epsilon}</td>
                <td>{percent(point.robust_accuracy)}</td>
                <td>
                  {percent(point.ci95.low)} to {percent(point.ci95.high)}
                </td>
                <td>{percent(point.mean_adversarial_confidence)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      </section>
      <section aria-labelledby="classes-title">
        <h3 id="classes-title">
          Per class, at ε = {headline.epsilon} ({headlineNorm})
        </h3>
        <TableBox label="Accuracy per class">
          <thead>
            <tr>
              <th scope="col">Class</th>
              <th scope="col">Samples</th>
              <th scope="col">Clean</th>
              <th scope="col">Robust (worst case)</th>
            </tr>
          </thead>
          <tbody>
            {report.per_class.map((row) => (
              <tr key={row.label}>
                <td>{row.label}</td>
                <td>{row.samples}</td>
                <td>{percent(row.clean_accuracy)}</td>
                <td>{percent(row.robust_accuracy)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      </section>
      {report.minimal_perturbation && (
        <section aria-labelledby="minimal-title">
          <h3 id="minimal-title">Smallest L∞ ε that flips a prediction</h3>
          <p>
            Median{" "}
            {report.minimal_perturbation.median === null
              ? "beyond the largest ε searched"
              : significant(report.minimal_perturbation.median)}{" "}
            (10th to 90th percentile {significant(report.minimal_perturbation.p10)} to{" "}
            {significant(report.minimal_perturbation.p90)});{" "}
            {percent(report.minimal_perturbation.unbroken_fraction)} of correctly classified samples were never flipped up to ε ={" "}
            {report.minimal_perturbation.max_epsilon}.
          </p>
        </section>
      )}
      <p className="muted">
        {report.samples.toLocaleString()} samples of {report.dataset} on {report.device}, {report.seconds.toFixed(1)} s. The HTML report adds
        a gallery of adversarial examples.
      </p>
    </article>
  );
}
