import { Link } from "react-router";

import { useJobs } from "../../api/queries";
import { ForRole } from "../../auth/guards";
import { Empty, ErrorNotice, Loading, PageTitle } from "../../components/common";
import { JobsTable } from "../../components/JobsTable";

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
        <JobsTable jobs={jobs.data} label="Your training jobs" linked />
      )}
    </>
  );
}
