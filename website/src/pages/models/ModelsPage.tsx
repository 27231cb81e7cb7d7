import { Link } from "react-router";

import { useModels } from "../../api/queries";
import { ForRole } from "../../auth/guards";
import { Empty, ErrorNotice, Loading, PageTitle, Status, TableBox, when } from "../../components/common";

export function ModelsPage() {
  return (
    <ForRole role="scientist">
      <Models />
    </ForRole>
  );
}

function Models() {
  const models = useModels();
  return (
    <>
      <PageTitle title="Models">
        <Link role="button" to="/models/new">
          New model
        </Link>
        <Link role="button" className="secondary" to="/models/import">
          Import ONNX
        </Link>
      </PageTitle>
      {models.isPending ? (
        <Loading what="your models" />
      ) : models.isError ? (
        <ErrorNotice error={models.error} retry={() => void models.refetch()} />
      ) : models.data.length === 0 ? (
        <Empty>
          <p>
            You have no models yet. <Link to="/models/new">Create one from an architecture and weights</Link>, or{" "}
            <Link to="/models/import">import an ONNX file</Link>.
          </p>
        </Empty>
      ) : (
        <TableBox label="Your models">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Parameters</th>
              <th scope="col">From</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {models.data.map((model) => (
              <tr key={model.model_id}>
                <td>
                  <Link to={`/models/${model.model_id}`}>{model.name}</Link>
                </td>
                <td>{model.parameter_count.toLocaleString()}</td>
                <td>{model.upload_format}</td>
                <td>
                  <Status value={model.status} />
                </td>
                <td>{when(model.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      )}
    </>
  );
}
