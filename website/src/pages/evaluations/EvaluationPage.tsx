import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link, useParams } from "react-router";

import type { Schemas } from "../../api/client";
import { fetchJson } from "../../api/transfers";
import { type Evaluation, useEvaluation } from "../../api/queries";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { robustnessCurves } from "../../charts/series";
import { DownloadButton, ErrorNotice, Loading, PageTitle, percent, ProgressBar, sentence, significant, Status, TableBox, when } from "../../components/common";
import { LineChart } from "../../components/LineChart";
import { attackLabel } from "./attacks";
import { capitalised, checksVerdict, curveRows, listing, normLabel, withSeriesLabels } from "./reading";

type Report = Schemas["EvaluationReport"];

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
  const reportLink = (format: "html" | "json" | "csv") =>
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
            <DownloadButton label="Download per-sample CSV" link={() => reportLink("csv")} />
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
        ; {data.spec.samples.toLocaleString()} samples of {data.spec.dataset === "digits" ? "the built-in digits" : "your evaluation set"},{" "}
        {data.spec.preset} preset: {listing(data.spec.attacks.map(attackLabel))}; queued {when(data.created_at)}.
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
    () =>
      Object.fromEntries(
        norms.map((norm) => [norm, withSeriesLabels(robustnessCurves(report.curves, report.worst_case, norm), report.curves, norm)]),
      ),
    [norms, report.curves, report.worst_case],
  );
  const rows = useMemo(() => curveRows(report.curves, report.worst_case), [report.curves, report.worst_case]);
  const { clean, headline } = report;
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
        <HeadlineCard headline={headline} />
      </div>
      <Checks checks={report.checks} flags={report.flags} />
      <section aria-labelledby="curves-title">
        <h3 id="curves-title">Robust accuracy against ε</h3>
        <div className="grid">
          {norms.map((norm) => (
            <LineChart
              key={norm}
              label={`Robust accuracy against ε (${normLabel(norm)}), per attack and in the worst case`}
              xTitle={`ε (${normLabel(norm)})`}
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
            {rows.map((row) => (
              <tr key={row.key}>
                <td>{row.worstCase ? <strong>{row.series}</strong> : row.series}</td>
                <td>{normLabel(row.norm)}</td>
                <td>{row.epsilon}</td>
                <td>{percent(row.robustAccuracy)}</td>
                <td>
                  {percent(row.ci95.low)} to {percent(row.ci95.high)}
                </td>
                <td>{percent(row.confidence)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      </section>
      <section aria-labelledby="classes-title">
        <h3 id="classes-title">
          Per class, at ε = {headline.epsilon} ({normLabel(headline.norm)})
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
      {report.minimal_perturbation && <MinimalPerturbation estimate={report.minimal_perturbation} />}
      <ManifestSection manifest={report.manifest} />
      <p className="muted">
        {report.samples.toLocaleString()} samples of {report.dataset} on {report.device}, {report.seconds.toFixed(1)} s. The outcome of
        each sample is in the per-sample CSV; the HTML report adds a gallery of adversarial examples.
      </p>
    </article>
  );
}

function HeadlineCard({ headline }: { headline: Report["headline"] }) {
  return (
    <div>
      <p className="big">{percent(headline.robust_accuracy)}</p>
      <p>
        robust accuracy at ε = {headline.epsilon} ({normLabel(headline.norm)})
      </p>
      <small className="muted">
        95% CI {percent(headline.ci95.low)} to {percent(headline.ci95.high)}; the worst case per sample of{" "}
        {listing(headline.attacks.map(attackLabel))}, {headline.preset} preset. Budget: {headline.budget_source}.
      </small>
      {!headline.standard && (
        <p>
          <small>This is not the standard AutoAttack evaluation, so this number may be optimistic.</small>
        </p>
      )}
      {!headline.reliable && (
        <div role="alert" className="notice error">
          <p>
            <strong>Not reliable: possible gradient masking.</strong> {headline.advice}
          </p>
        </div>
      )}
    </div>
  );
}

function Checks({ checks, flags }: { checks: Report["checks"]; flags: Report["flags"] }) {
  // A flag always shows, even one no check in the list accounts for.
  const unchecked = flags.filter((flag) => !checks.some((check) => check.code === flag.code));
  return (
    <section aria-labelledby="checks-title">
      <h3 id="checks-title">{checksVerdict(checks)}</h3>
      {checks.length === 0 && unchecked.length === 0 && <p>No gradient-masking check ran, so none is reported.</p>}
      {checks.map((check) =>
        check.passed ? (
          <p key={check.code}>
            <strong>{capitalised(check.title)}: passed.</strong> {sentence(check.finding)}
          </p>
        ) : (
          <div key={check.code} className="notice warning">
            <p>
              <strong>{capitalised(check.title)}: failed.</strong> {sentence(check.finding)}
            </p>
            {check.advice && <p>What to try: {check.advice}</p>}
          </div>
        ),
      )}
      {unchecked.map((flag) => (
        <div key={flag.code} className="notice warning">
          <p>
            <strong>{flag.code.replaceAll("_", " ")}:</strong> {flag.message}
          </p>
        </div>
      ))}
    </section>
  );
}

function MinimalPerturbation({ estimate }: { estimate: NonNullable<Report["minimal_perturbation"]> }) {
  return (
    <section aria-labelledby="minimal-title">
      <h3 id="minimal-title">Minimal perturbation: an upper bound</h3>
      <p>
        For each correctly classified sample, an L∞ ε at which PGD flips its prediction, found by bisection: at most{" "}
        {significant(estimate.precision ?? 0)} above the smallest ε at which PGD succeeded, and the true smallest budget can only be lower.
        Median {estimate.median === null ? "beyond the largest ε searched" : significant(estimate.median)} (10th to 90th percentile{" "}
        {significant(estimate.p10)} to {significant(estimate.p90)}); {percent(estimate.unbroken_fraction)} of correctly classified samples
        were not flipped up to ε = {estimate.max_epsilon}.
      </p>
    </section>
  );
}

function ManifestSection({ manifest }: { manifest: Report["manifest"] }) {
  const usedNorms = new Set(manifest.attacks.map((run) => run.norm));
  const settings: [string, string][] = [
    ["Preset", manifest.preset],
    ["Samples", manifest.samples.toLocaleString()],
    ["Seed", String(manifest.seed)],
    ["Batch size", manifest.batch_size.toLocaleString()],
    ...(usedNorms.has("linf") ? [["ε grid, L∞", manifest.epsilons_linf.join(", ")] as [string, string]] : []),
    ...(usedNorms.has("l2") ? [["ε grid, L2", manifest.epsilons_l2.join(", ")] as [string, string]] : []),
    ["Model SHA-256", manifest.model_sha256 ?? "not recorded"],
    ["Device", manifest.device],
    ...Object.entries(manifest.libraries).sort(([a], [b]) => a.localeCompare(b)),
  ];
  const shown = (value: number | null | undefined) => (value === null || value === undefined ? "—" : String(value));
  return (
    <section aria-labelledby="manifest-title">
      <h3 id="manifest-title">Manifest</h3>
      <p className="muted">How these numbers were made: the attacks in the order they ran, with their settings, and what else decides the result.</p>
      <TableBox label="Attacks as they ran">
        <thead>
          <tr>
            <th scope="col">Attack</th>
            <th scope="col">Norm</th>
            <th scope="col">Steps</th>
            <th scope="col">Step (share of ε)</th>
            <th scope="col">Restarts</th>
            <th scope="col">Target classes</th>
            <th scope="col">Queries</th>
            <th scope="col">Cascaded</th>
          </tr>
        </thead>
        <tbody>
          {manifest.attacks.map((run) => (
            <tr key={run.attack}>
              <td>{attackLabel(run.attack)}</td>
              <td>{normLabel(run.norm)}</td>
              <td>{shown(run.steps)}</td>
              <td>{shown(run.relative_step)}</td>
              <td>{run.restarts}</td>
              <td>{shown(run.target_classes)}</td>
              <td>{shown(run.queries)}</td>
              <td>{run.cascaded ? "yes" : "no"}</td>
            </tr>
          ))}
        </tbody>
      </TableBox>
      <TableBox label="Settings">
        <tbody>
          {settings.map(([name, value]) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              <td>
                <code>{value}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </TableBox>
    </section>
  );
}
