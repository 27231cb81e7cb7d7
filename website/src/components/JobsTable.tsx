import type { Job } from "../api/queries";
import { ShortId, Status, TableBox, when } from "./common";

type JobRow = Pick<Job, "job_id" | "status" | "status_reason" | "current_round" | "total_rounds" | "created_at" | "updated_at">;

/** Training jobs with their progress: a scientist's own (linked to their pages) or those on an app's devices. */
export function JobsTable({ jobs, label, linked }: { jobs: JobRow[]; label: string; linked: boolean }) {
  return (
    <TableBox label={label}>
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
        {jobs.map((job) => (
          <tr key={job.job_id}>
            <td>
              <ShortId id={job.job_id} to={linked ? `/jobs/${job.job_id}` : undefined} />
            </td>
            <td>
              <Status value={job.status} />
              {job.status === "failed" && job.status_reason && <small className="muted block">{job.status_reason}</small>}
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
  );
}
