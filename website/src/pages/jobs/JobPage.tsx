import { useMemo } from "react";
import { Link, useParams } from "react-router";

import { isOpenJob, type Job, type Round, useJob } from "../../api/queries";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { trainingCurves } from "../../charts/series";
import { DownloadButton, ErrorNotice, fixed, sentence, Loading, PageTitle, percent, ProgressBar, Status, TableBox, when } from "../../components/common";
import { LineChart } from "../../components/LineChart";

export function JobPage() {
  return (
    <ForRole role="scientist">
      <JobDetail />
    </ForRole>
  );
}

function JobDetail() {
  const { jobId = "" } = useParams();
  const api = useApi();
  const job = useJob(jobId);
  const curves = useMemo(() => trainingCurves(job.data?.rounds ?? []), [job.data?.rounds]);
  if (job.isPending) return <Loading what="the training job" />;
  if (job.isError) return <ErrorNotice error={job.error} retry={() => void job.refetch()} />;
  const data = job.data;
  const rounds = data.rounds ?? [];
  const completedRounds = rounds.filter((round) => round.status === "completed").length;
  const open = rounds.find((round) => round.status === "open");
  return (
    <>
      <PageTitle title={`Training job ${data.job_id.slice(0, 8)}`}>
        {data.status === "completed" && (
          <>
            <DownloadButton
              label="Download the trained model"
              link={() => api.call((c) => c.GET("/v1/jobs/{job_id}/model", { params: { path: { job_id: data.job_id } } }))}
            />
            <Link role="button" className="secondary" to={`/evaluations/new?model=${data.model_id}&job=${data.job_id}`}>
              Evaluate the trained model
            </Link>
          </>
        )}
      </PageTitle>
      <p className="muted">
        <Link to={`/models/${data.model_id}`}>Model</Link> trained on the devices of{" "}
        <Link to={`/datasets/${data.dataset_id}`}>this app</Link>; started {when(data.created_at)}.
      </p>
      <section aria-labelledby="status-title" className="card" aria-live="polite">
        <h2 id="status-title">
          <Status value={data.status} /> {statusLine(data, completedRounds)}
        </h2>
        <ProgressBar value={completedRounds / data.total_rounds} label="Rounds completed" />
        {data.node && isOpenJob(data) && <NodeHealthLine node={data.node} />}
        {open && <OpenRound round={open} job={data} />}
        {data.status === "failed" && (
          <div role="alert" className="notice error">
            <p>
              <strong>Training failed:</strong> {data.status_reason}
            </p>
            <p>Check that devices of the app are running with a valid API key, or start the job again with a longer deadline or a lower quorum.</p>
          </div>
        )}
        {data.status === "completed" && data.status_reason && <p>{sentence(data.status_reason)}</p>}
        {data.evaluation_id && (
          <p>
            The robustness evaluation of the trained model: <Link to={`/evaluations/${data.evaluation_id}`}>see its report</Link>.
          </p>
        )}
      </section>
      {completedRounds > 0 && (
        <section aria-labelledby="curves-title">
          <h2 id="curves-title">Loss and accuracy per round</h2>
          <p className="muted">As the devices report them on their own training data, weighted as their updates are: by sample count, within the job's share cap.</p>
          <div className="grid">
            <LineChart label="Training loss per round" xTitle="round" yTitle="loss" labels={curves.loss.labels} series={curves.loss.series} yMin={0} />
            <LineChart
              label="Training accuracy per round"
              xTitle="round"
              yTitle="accuracy"
              labels={curves.accuracy.labels}
              series={curves.accuracy.series}
              yMin={0}
              yMax={1}
            />
          </div>
        </section>
      )}
      <section aria-labelledby="rounds-title">
        <h2 id="rounds-title">Rounds</h2>
        {rounds.length === 0 ? (
          <p aria-busy={isOpenJob(data)}>The first round opens as soon as the FL node has started.</p>
        ) : (
          <RoundsTable rounds={rounds} />
        )}
      </section>
      <details>
        <summary>Configuration</summary>
        <pre className="code">{JSON.stringify({ client_config: data.client_config, server_config: data.server_config }, null, 2)}</pre>
      </details>
    </>
  );
}

function statusLine(job: Job, completed: number): string {
  if (job.status === "starting") {
    return (job.node?.launches ?? 0) > 1 ? "relaunching the FL node" : "waiting for the FL node to start";
  }
  if (job.status === "running") return `round ${job.current_round} of ${job.total_rounds}`;
  return `${completed} of ${job.total_rounds} rounds completed`;
}

/** The job's FL node as the supervisor last found it: a node that stops is relaunched, up to a limit. */
function NodeHealthLine({ node }: { node: NonNullable<Job["node"]> }) {
  return (
    <p>
      FL node: <Status value={node.health} />
      {node.launches > 0 && ` launch ${node.launches} of at most ${node.max_launches}`}
      {node.checked_at && `, checked ${when(node.checked_at)}`}.
      {node.detail && node.health !== "healthy" && <span className="muted"> Last problem: {sentence(node.detail)}</span>}
    </p>
  );
}

function OpenRound({ round, job }: { round: Round; job: Job }) {
  const { min_reports, max_reports } = job.server_config;
  return (
    <p>
      Round {round.round}
      {round.attempt > 1 ? `, attempt ${round.attempt}` : ""}: <strong>{round.reports}</strong> of {max_reports} reports so far (
      {min_reports} needed), {round.devices ?? 0} devices training; open since {when(round.opened_at)}.
    </p>
  );
}

function RoundsTable({ rounds }: { rounds: Round[] }) {
  const sorted = [...rounds].sort((a, b) => a.round - b.round);
  return (
    <TableBox label="Rounds">
      <thead>
        <tr>
          <th scope="col">Round</th>
          <th scope="col">Status</th>
          <th scope="col">Attempts</th>
          <th scope="col">Devices</th>
          <th scope="col">Reports</th>
          <th scope="col">Samples</th>
          <th scope="col">Loss</th>
          <th scope="col">Accuracy</th>
          <th scope="col">Failed attempts</th>
        </tr>
      </thead>
      <tbody>
        {sorted.map((round) => (
          <tr key={round.round}>
            <td>{round.round}</td>
            <td>
              <Status value={round.status} />
            </td>
            <td>{round.attempt}</td>
            <td>{round.devices ?? "—"}</td>
            <td>{round.reports}</td>
            <td>{round.samples.toLocaleString()}</td>
            <td>{fixed(round.loss)}</td>
            <td>{percent(round.accuracy)}</td>
            <td>{round.failures.length === 0 ? "none" : round.failures.join("; ")}</td>
          </tr>
        ))}
      </tbody>
    </TableBox>
  );
}
