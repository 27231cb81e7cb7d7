import { useMutation, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { useDatasets, useModels } from "../../api/queries";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { ErrorNotice, Loading, PageTitle } from "../../components/common";
import { ConfigFieldset } from "../../forms/ConfigFieldset";
import { Field, FormErrors, SchemaField } from "../../forms/fields";
import { fieldOf, fieldsOf } from "../../forms/schema";
import { collect, initialValues, messagesUnder, problemsUnder, unclaimed } from "../../forms/values";

const CLIENT_FIELDS = fieldsOf("ClientConfig", ["local_epochs", "batch_size", "learning_rate", "momentum"]);
// How far one device may move the model, and what is kept of its update: docs/protocol.md, "Bounded updates".
const BOUND_NAMES = ["max_update_norm", "clip_norm", "max_samples_per_report", "max_report_share", "retain_updates"];
const BOUND_FIELDS = BOUND_NAMES.map((name) => fieldOf("ServerConfig", name));
const SERVER_FIELDS = fieldsOf("ServerConfig", [
  "rounds",
  "min_reports",
  "max_reports",
  "cohort_size",
  "round_deadline_seconds",
  "max_round_attempts",
  "min_battery",
  "require_unmetered_network",
]).filter((field) => !BOUND_NAMES.includes(field.name));
const EVALUATION_SAMPLES = fieldOf("EvaluationSpec", "samples");

export function NewJobPage() {
  return (
    <ForRole role="scientist">
      <JobForm />
    </ForRole>
  );
}

function JobForm() {
  const api = useApi();
  const queries = useQueryClient();
  const navigate = useNavigate();
  const [search] = useSearchParams();
  const models = useModels();
  const datasets = useDatasets(false);
  const [modelId, setModelId] = useState(search.get("model") ?? "");
  const [datasetId, setDatasetId] = useState(search.get("dataset") ?? "");
  const [client, setClient] = useState(() => initialValues(CLIENT_FIELDS));
  const [server, setServer] = useState(() => initialValues(SERVER_FIELDS));
  const [bounds, setBounds] = useState(() => initialValues(BOUND_FIELDS));
  const [evaluate, setEvaluate] = useState(false);
  const [samples, setSamples] = useState("");
  const [local, setLocal] = useState<{
    client: Record<string, string>;
    server: Record<string, string>;
    bounds: Record<string, string>;
    other: Record<string, string>;
  }>({ client: {}, server: {}, bounds: {}, other: {} });

  const start = useMutation({
    mutationFn: (body: Record<string, unknown>) => api.call((c) => c.POST("/v1/jobs", { body: body as never })),
    onSuccess: (job) => {
      void queries.invalidateQueries({ queryKey: ["jobs"] });
      navigate(`/jobs/${job.job_id}`);
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const clientConfig = collect(CLIENT_FIELDS, client);
    const serverConfig = collect(SERVER_FIELDS, server);
    const boundsConfig = collect(BOUND_FIELDS, bounds);
    const evaluation = collect([EVALUATION_SAMPLES], { samples });
    const other: Record<string, string> = {};
    if (!modelId) other.model_id = "choose one of your models";
    if (!datasetId) other.dataset_id = "choose the app whose devices train it";
    if (evaluate && evaluation.errors.samples) other.samples = evaluation.errors.samples;
    setLocal({ client: clientConfig.errors, server: serverConfig.errors, bounds: boundsConfig.errors, other });
    const invalid = [clientConfig.errors, serverConfig.errors, boundsConfig.errors, other].some(
      (errors) => Object.keys(errors).length > 0,
    );
    if (invalid) return;
    start.mutate({
      model_id: modelId,
      dataset_id: datasetId,
      client_config: clientConfig.body,
      server_config: { ...serverConfig.body, ...boundsConfig.body },
      ...(evaluate ? { evaluate_on_completion: evaluation.body } : {}),
    });
  }

  const clientProblems = problemsUnder(start.error, "client_config", CLIENT_FIELDS.map((f) => f.name));
  // Both fieldsets are server_config: each shows the problems about its own fields.
  const serverProblems = problemsUnder(
    start.error,
    "server_config",
    [...SERVER_FIELDS, ...BOUND_FIELDS].map((f) => f.name),
  );
  if (models.isPending || datasets.isPending) return <Loading what="your models and the datasets" />;
  if (models.isError) return <ErrorNotice error={models.error} retry={() => void models.refetch()} />;
  if (datasets.isError) return <ErrorNotice error={datasets.error} retry={() => void datasets.refetch()} />;
  const readyModels = models.data.filter((model) => model.status === "ready");
  const readyDatasets = datasets.data.filter((dataset) => dataset.status === "ready");

  return (
    <>
      <PageTitle title="Start training" />
      <p>
        Each round, the FL node admits up to <em>cohort size</em> devices of the app, sends them the model, and averages
        their updates, weighted by their sample counts within the bounds below, once <em>min reports</em> have arrived and either <em>max reports</em>{" "}
        have too or the deadline has passed. Empty fields take the default shown.
      </p>
      {readyModels.length === 0 && (
        <p className="notice">
          You have no ready model yet: <Link to="/models/new">create one</Link> first.
        </p>
      )}
      <form onSubmit={submit} noValidate aria-label="Start training">
        <div className="grid">
          <Field label="Model" error={local.other.model_id ?? messagesUnder(start.error, "model_id").join("; ")}>
            {(props) => (
              <select {...props} name="model_id" value={modelId} onChange={(e) => setModelId(e.target.value)}>
                <option value="">Choose a model…</option>
                {readyModels.map((model) => (
                  <option key={model.model_id} value={model.model_id}>
                    {model.name} ({model.parameter_count.toLocaleString()} parameters)
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="App (dataset)" error={local.other.dataset_id ?? messagesUnder(start.error, "dataset_id").join("; ")}>
            {(props) => (
              <select {...props} name="dataset_id" value={datasetId} onChange={(e) => setDatasetId(e.target.value)}>
                <option value="">Choose an app…</option>
                {readyDatasets.map((dataset) => (
                  <option key={dataset.dataset_id} value={dataset.dataset_id}>
                    {dataset.app_name}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <ConfigFieldset
          legend="On each device (client config)"
          fields={CLIENT_FIELDS}
          values={client}
          onChange={(name, value) => setClient((all) => ({ ...all, [name]: value }))}
          errors={{ ...clientProblems.byField, ...local.client }}
          general={clientProblems.general}
        />
        <ConfigFieldset
          legend="On the FL node (server config)"
          fields={SERVER_FIELDS}
          values={server}
          onChange={(name, value) => setServer((all) => ({ ...all, [name]: value }))}
          errors={{ ...serverProblems.byField, ...local.server }}
          general={serverProblems.general}
        />
        <ConfigFieldset
          legend="Against bad devices (server config)"
          description="Every update is checked before it counts: one over the norm bound or claiming more samples than the cap is refused; clipping scales each update down to a norm; the share cap keeps any one report from outweighing the rest. A round of fewer than 1 / share reports weighs them equally."
          fields={BOUND_FIELDS}
          values={bounds}
          onChange={(name, value) => setBounds((all) => ({ ...all, [name]: value }))}
          errors={{ ...serverProblems.byField, ...local.bounds }}
          general={[]}
        />
        <fieldset>
          <legend>When training ends</legend>
          <label>
            <input type="checkbox" role="switch" checked={evaluate} onChange={(e) => setEvaluate(e.target.checked)} />
            Evaluate the trained model's adversarial robustness (the standard AutoAttack ensemble, default ε grids)
          </label>
          {evaluate && (
            <SchemaField
              field={EVALUATION_SAMPLES}
              label="Samples to evaluate"
              value={samples}
              onChange={setSamples}
              error={local.other.samples ?? messagesUnder(start.error, "evaluate_on_completion").join("; ")}
            />
          )}
        </fieldset>
        <FormErrors messages={unclaimed(start.error, ["client_config", "server_config", "model_id", "dataset_id", "evaluate_on_completion"])} />
        <button type="submit" aria-busy={start.isPending} disabled={start.isPending}>
          Start training
        </button>
      </form>
    </>
  );
}
