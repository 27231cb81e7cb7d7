import { useDatasetJobs } from "../../api/queries";
import { Empty, ErrorNotice, Loading, ShortId, Status, TableBox, when } from "../../components/common";

/** The training jobs that run on the app's devices, as their developer sees them. */
export function DatasetJobs({ datasetId }: { datasetId: string }) {
  const jobs = useDatasetJobs(datasetId, true);
  return (
    <section aria-labelledby="dataset-jobs-title">
      <h2 id="dataset-jobs-title">Training on your app's devices</h2>
      {jobs.isPending ? (
        <Loading what="training jobs" />
      ) : jobs.isError ? (
        <ErrorNotice error={jobs.error} retry={() => void jobs.refetch()} />
      ) : jobs.data.length === 0 ? (
        <Empty>
          <p>No scientist has started training on this app yet. Jobs show here, with their progress, when they do.</p>
        </Empty>
      ) : (
        <TableBox label="Training jobs on this app">
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Status</th>
              <th scope="col">Round</th>
              <th scope="col">Started</th>
              <th scope="col">Last change</th>
            </tr>
          </thead>
          <tbody>
            {jobs.data.map((job) => (
              <tr key={job.job_id}>
                <td>
                  <ShortId id={job.job_id} />
                </td>
                <td>
                  <Status value={job.status} />
                  {job.status_reason && <small className="muted block">{job.status_reason}</small>}
                </td>
                <td>
                  {job.current_round} of {job.total_rounds}
                </td>
                <td>{when(job.created_at)}</td>
                <td>{when(job.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      )}
    </section>
  );
}
