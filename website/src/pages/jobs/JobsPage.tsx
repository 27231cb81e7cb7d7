import { Link } from "react-router";

import { useJobs } from "../../api/queries";
import { ForRole } from "../../auth/guards";
import { Empty, ErrorNotice, Loading, PageTitle, ShortId, Status, TableBox, when } from "../../components/common";

export function JobsPage() {
  return (
    <ForRole role="scientist">
      <Jobs />
    </ForRole>
  );
}

function Jobs() {
  const jobs = useJobs();
  return (
    <>
      <PageTitle title="Training">
        <Link role="button" to="/jobs/new">
          Start training
        </Link>
      </PageTitle>
      {jobs.isPending ? (
        <Loading what="your training jobs" />
      ) : jobs.isError ? (
        <ErrorNotice error={jobs.error} retry={() => void jobs.refetch()} />
      ) : jobs.data.length === 0 ? (
        <Empty>
          <p>
            No training yet. <Link to="/jobs/new">Start a job</Link> to train one of your models on an app's devices.
          </p>
        </Empty>
      ) : (
        <TableBox label="Your training jobs">
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
                  <ShortId id={job.job_id} to={`/jobs/${job.job_id}`} />
                </td>
                <td>
                  <Status value={job.status} />
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
    </>
  );
}
