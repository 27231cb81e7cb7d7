import { Link } from "react-router";

import { useDatasets } from "../../api/queries";
import { useAuth } from "../../auth/AuthProvider";
import { Empty, ErrorNotice, Loading, PageTitle, Status, TableBox, when } from "../../components/common";

/** App developers see the apps they registered; scientists browse every dataset they may train on. */
export function DatasetsPage() {
  const { person } = useAuth();
  const developer = person?.role === "app_developer";
  const datasets = useDatasets(developer);
  return (
    <>
      <PageTitle title={developer ? "Your apps" : "Datasets"}>
        {developer && (
          <Link to="/datasets/new" role="button">
            Register an app
          </Link>
        )}
      </PageTitle>
      {developer ? (
        <p>Each app you register is a dataset scientists can train on, through the devices that run your app.</p>
      ) : (
        <p>The apps whose devices can train your models. Each has a schema and a generated sample to try your model on.</p>
      )}
      {datasets.isPending ? (
        <Loading what="datasets" />
      ) : datasets.isError ? (
        <ErrorNotice error={datasets.error} retry={() => void datasets.refetch()} />
      ) : datasets.data.length === 0 ? (
        <Empty>
          {developer ? (
            <p>
              You have not registered an app yet. <Link to="/datasets/new">Register your first app</Link> to get its API key.
            </p>
          ) : (
            <p>No app developer has registered a dataset yet. Datasets appear here as soon as they do.</p>
          )}
        </Empty>
      ) : (
        <TableBox label="Datasets">
          <thead>
            <tr>
              <th scope="col">App</th>
              <th scope="col">Attributes</th>
              <th scope="col">Sample rows</th>
              <th scope="col">Sample</th>
              <th scope="col">Registered</th>
            </tr>
          </thead>
          <tbody>
            {datasets.data.map((dataset) => (
              <tr key={dataset.dataset_id}>
                <td>
                  <Link to={`/datasets/${dataset.dataset_id}`}>{dataset.app_name}</Link>
                </td>
                <td>{dataset.attributes.length}</td>
                <td>{dataset.rows?.toLocaleString() ?? "—"}</td>
                <td>
                  <Status value={dataset.status} />
                </td>
                <td>{when(dataset.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      )}
    </>
  );
}
