import { useDatasetJobs } from "../../api/queries";
import { Empty, ErrorNotice, Loading } from "../../components/common";
import { JobsTable } from "../../components/JobsTable";

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
        <JobsTable jobs={jobs.data} label="Training jobs on this app" linked={false} />
      )}
    </section>
  );
}
