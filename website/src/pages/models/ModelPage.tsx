import { Link, useParams } from "react-router";

import { useModel } from "../../api/queries";
import { ForRole } from "../../auth/guards";
import { ErrorNotice, Loading, PageTitle, Status, TableBox, when } from "../../components/common";

export function ModelPage() {
  return (
    <ForRole role="scientist">
      <ModelDetail />
    </ForRole>
  );
}

function ModelDetail() {
  const { modelId = "" } = useParams();
  const model = useModel(modelId);
  if (model.isPending) return <Loading what="the model" />;
  if (model.isError) return <ErrorNotice error={model.error} retry={() => void model.refetch()} />;
  const data = model.data;
  const ready = data.status === "ready";
  return (
    <>
      <PageTitle title={data.name}>
        {ready && (
          <>
            <Link role="button" to={`/jobs/new?model=${data.model_id}`}>
              Train it
            </Link>
            <Link role="button" className="secondary" to={`/evaluations/new?model=${data.model_id}`}>
              Evaluate its robustness
            </Link>
          </>
        )}
      </PageTitle>
      <p className="muted">
        Model <code>{data.model_id}</code>, {data.upload_format === "onnx" ? "imported from ONNX" : "uploaded"} {when(data.created_at)} ·{" "}
        {data.parameter_count.toLocaleString()} parameters · <Status value={data.status} />
      </p>
      {!ready && (
        <div className="notice">
          <p>
            Its file was never committed, so it cannot be trained. <Link to="/models/new">Create the model again</Link> with
            its file.
          </p>
        </div>
      )}
      {data.import_notes.length > 0 && (
        <section aria-labelledby="notes-title">
          <h2 id="notes-title">What the import changed</h2>
          <ul>
            {data.import_notes.map((note) => (
              <li key={note}>{note}</li>
            ))}
          </ul>
        </section>
      )}
      {data.architecture && (
        <section aria-labelledby="architecture-title">
          <h2 id="architecture-title">Architecture</h2>
          <p>
            Input <code>[{data.architecture.input_shape.join(", ")}]</code> to {data.architecture.num_classes} classes.
          </p>
          <TableBox label="Layers">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Layer</th>
                <th scope="col">Settings</th>
              </tr>
            </thead>
            <tbody>
              {data.architecture.layers.map((layer, index) => {
                const { type, ...settings } = layer as { type: string } & Record<string, unknown>;
                return (
                  <tr key={index}>
                    <td>{index}</td>
                    <td>
                      <code>{type}</code>
                    </td>
                    <td>
                      {Object.entries(settings)
                        .map(([key, value]) => `${key} ${Array.isArray(value) ? `[${value.join(", ")}]` : String(value)}`)
                        .join(", ") || "—"}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </TableBox>
        </section>
      )}
    </>
  );
}
