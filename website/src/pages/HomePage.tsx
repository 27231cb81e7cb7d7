import { Link } from "react-router";

import { isOpenJob, useDatasets, useEvaluations, useJobs, useModels } from "../api/queries";
import { useAuth } from "../auth/AuthProvider";
import { Loading, ShortId, Status } from "../components/common";

export function HomePage() {
  const { person } = useAuth();
  if (person === undefined) return <Loading what="your session" />;
  if (person === null) return <Welcome />;
  if (person.role === "app_developer") return <DeveloperHome />;
  if (person.role === "scientist") return <ScientistHome />;
  return (
    <div className="notice">
      <h1>Your account has no role yet</h1>
      <p>Its set-up may still be running: sign out and in again in a minute. If it persists, ask the platform's operator.</p>
    </div>
  );
}

function Welcome() {
  return (
    <section className="welcome">
      <h1>Federated learning on the devices that hold the data</h1>
      <p>
        App developers register the data their app keeps on each device. Data scientists train models on those devices,
        by federated learning: raw data never leaves a phone, only model updates do. Then the trained model's
        adversarial robustness is measured, with a report that says how much to trust it.
      </p>
      <div className="actions">
        <Link role="button" to="/sign-up">
          Create an account
        </Link>
        <Link role="button" className="secondary" to="/sign-in">
          Sign in
        </Link>
      </div>
    </section>
  );
}

function DeveloperHome() {
  const datasets = useDatasets(true);
  return (
    <>
      <h1>Your apps</h1>
      {datasets.isPending ? (
        <Loading what="your apps" />
      ) : datasets.data && datasets.data.length > 0 ? (
        <ul>
          {datasets.data.map((dataset) => (
            <li key={dataset.dataset_id}>
              <Link to={`/datasets/${dataset.dataset_id}`}>{dataset.app_name}</Link> <Status value={dataset.status} />
            </li>
          ))}
        </ul>
      ) : (
        <p>
          Start by <Link to="/datasets/new">registering your app</Link>: describe the data it keeps on each device, then
          create an API key for the app to enrol its devices.
        </p>
      )}
    </>
  );
}

function ScientistHome() {
  const models = useModels();
  const jobs = useJobs();
  const evaluations = useEvaluations();
  const running = jobs.data?.filter(isOpenJob) ?? [];
  return (
    <>
      <h1>Your work</h1>
      <div className="grid cards">
        <article>
          <h2>Models</h2>
          <p className="big">{models.data?.length ?? "…"}</p>
          <Link to="/models/new">New model</Link> · <Link to="/models/import">Import ONNX</Link>
        </article>
        <article>
          <h2>Training</h2>
          <p className="big">{jobs.data ? running.length : "…"}</p>
          <p>running now</p>
          <Link to="/jobs/new">Start training</Link>
        </article>
        <article>
          <h2>Evaluations</h2>
          <p className="big">{evaluations.data?.length ?? "…"}</p>
          <Link to="/evaluations/new">Evaluate a model</Link>
        </article>
      </div>
      {running.length > 0 && (
        <section aria-labelledby="running-title">
          <h2 id="running-title">Running now</h2>
          <ul>
            {running.map((job) => (
              <li key={job.job_id}>
                <ShortId id={job.job_id} to={`/jobs/${job.job_id}`} />: round {job.current_round} of {job.total_rounds}
              </li>
            ))}
          </ul>
        </section>
      )}
      <p>
        New here? <Link to="/datasets">Browse the datasets</Link>, download a sample to try your model on, then train it on
        the app's devices.
      </p>
    </>
  );
}
