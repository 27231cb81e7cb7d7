import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router";

import { useApi, useAuth } from "../../auth/AuthProvider";
import { fetchHead } from "../../api/transfers";
import { type Dataset, useDataset } from "../../api/queries";
import { DownloadButton, ErrorNotice, Loading, PageTitle, Status, TableBox, when } from "../../components/common";
import { describeValues } from "../../forms/attributes";
import { ApiKeys } from "./ApiKeys";
import { DatasetJobs } from "./DatasetJobs";
import { previewRows } from "./samplePreview";

const PREVIEW_BYTES = 64 * 1024;
const PREVIEW_ROWS = 10;

export function DatasetPage() {
  const { datasetId = "" } = useParams();
  const { person } = useAuth();
  const dataset = useDataset(datasetId);
  if (dataset.isPending) return <Loading what="the dataset" />;
  if (dataset.isError) return <ErrorNotice error={dataset.error} retry={() => void dataset.refetch()} />;
  const data = dataset.data;
  // The API shows a dataset to scientists and to the developer who registered it, so a developer
  // who can read it owns it.
  const owner = person?.role === "app_developer";
  return (
    <>
      <PageTitle title={data.app_name}>
        {person?.role === "scientist" && data.status === "ready" && (
          <Link role="button" to={`/jobs/new?dataset=${data.dataset_id}`}>
            Train a model on it
          </Link>
        )}
      </PageTitle>
      <p className="muted">
        Dataset <code>{data.dataset_id}</code>, registered {when(data.created_at)}
      </p>
      <section aria-labelledby="schema-title">
        <h2 id="schema-title">Schema</h2>
        <TableBox label="Attributes of the schema">
          <thead>
            <tr>
              <th scope="col">Attribute</th>
              <th scope="col">Type</th>
              <th scope="col">Values</th>
              <th scope="col">Empty</th>
            </tr>
          </thead>
          <tbody>
            {data.attributes.map((attribute) => (
              <tr key={String(attribute.name)}>
                <td>
                  <code>{String(attribute.name)}</code>
                </td>
                <td>{String(attribute.type)}</td>
                <td>{describeValues(attribute)}</td>
                <td>{attribute.null_ratio ? `${Number(attribute.null_ratio) * 100}%` : "never"}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      </section>
      <Sample dataset={data} />
      {owner && <ApiKeys datasetId={data.dataset_id} />}
      {owner && <DatasetJobs datasetId={data.dataset_id} />}
    </>
  );
}

function Sample({ dataset }: { dataset: Dataset }) {
  const api = useApi();
  const link = (format: "csv" | "parquet") =>
    api.call((c) =>
      c.GET("/v1/datasets/{dataset_id}/sample", {
        params: { path: { dataset_id: dataset.dataset_id }, query: { format } },
      }),
    );
  const ready = dataset.status === "ready";
  const preview = useQuery({
    queryKey: ["datasets", dataset.dataset_id, "preview"],
    enabled: ready,
    staleTime: Infinity, // a sample never changes
    queryFn: async () => {
      const { url } = await link("csv");
      const head = await fetchHead(url, PREVIEW_BYTES);
      return previewRows(head.text, head.complete, PREVIEW_ROWS);
    },
  });
  return (
    <section aria-labelledby="sample-title">
      <h2 id="sample-title">
        Sample dataset <Status value={dataset.status} />
      </h2>
      {dataset.status === "registered" && <p aria-busy="true">The sample is being generated from the schema; this takes a few seconds.</p>}
      {dataset.status === "failed" && (
        <div role="alert" className="notice error">
          <p>The sample could not be generated: {dataset.status_reason}</p>
          <p>Register the app again with the schema corrected.</p>
        </div>
      )}
      {ready && (
        <>
          <p>
            {dataset.rows?.toLocaleString()} rows generated from the schema
            {dataset.seed !== null && dataset.seed !== undefined
              ? ` with seed ${dataset.seed}: the same schema and seed always give the same rows.`
              : "."}
          </p>
          <div className="actions">
            <DownloadButton label="Download CSV" link={() => link("csv")} />
            <DownloadButton label="Download Parquet" link={() => link("parquet")} />
          </div>
          {preview.isPending ? (
            <Loading what="the first rows" />
          ) : preview.isError ? (
            <ErrorNotice error={preview.error} retry={() => void preview.refetch()} />
          ) : (
            <TableBox label={`First ${preview.data.rows.length} rows of the sample`}>
              <caption>First {preview.data.rows.length} rows</caption>
              <thead>
                <tr>
                  {preview.data.columns.map((column) => (
                    <th scope="col" key={column}>
                      {column}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {preview.data.rows.map((row, index) => (
                  <tr key={index}>
                    {row.map((value, column) => (
                      <td key={column}>{value === "" ? <span className="muted">empty</span> : value}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </TableBox>
          )}
        </>
      )}
    </section>
  );
}
