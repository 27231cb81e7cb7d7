import { useMutation, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { uploadFile } from "../../api/transfers";
import { useJobs, useModels } from "../../api/queries";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { ErrorNotice, Loading, PageTitle } from "../../components/common";
import { ConfigFieldset } from "../../forms/ConfigFieldset";
import { Field, FormErrors, SchemaField } from "../../forms/fields";
import { fieldOf, fieldsOf, limitsText } from "../../forms/schema";
import { collect, initialValues, messagesUnder, problemsUnder, unclaimed } from "../../forms/values";
import { UploadProgress } from "../models/UploadStep";
import { ATTACKS, CUSTOM, DEFAULT_PRESET, PRESETS } from "./attacks";
import { normLabel, presetPlan } from "./reading";

// What a preset fixes, so the form asks for them only with the custom preset; their defaults there are custom's.
const CUSTOM_PRESET = PRESETS.find((preset) => preset.name === CUSTOM);
const FIXED_BY_PRESET = ["steps", "restarts", "target_classes", "queries"] as const;
const CUSTOM_FIELDS = fieldsOf("EvaluationSpec", [...FIXED_BY_PRESET])
  .filter((field) => (FIXED_BY_PRESET as readonly string[]).includes(field.name))
  .map((field) => ({ ...field, default: CUSTOM_PRESET?.[field.name as (typeof FIXED_BY_PRESET)[number]] ?? field.default }));
const OWN_INPUTS = ["preset", "norms", "attacks", "dataset", "epsilons_linf", "epsilons_l2", "headline_epsilon", ...FIXED_BY_PRESET];
const SPEC_FIELDS = fieldsOf("EvaluationSpec", ["samples", "step_size", "random_start", "minimal_perturbation"]).filter((field) => !OWN_INPUTS.includes(field.name));
const GRID_FIELDS = [fieldOf("EvaluationSpec", "epsilons_linf"), fieldOf("EvaluationSpec", "epsilons_l2")];
const HEADLINE_FIELD = {
  ...fieldOf("EvaluationSpec", "headline_epsilon"),
  label: "Headline budget",
  description:
    "The ε the headline robust accuracy is read at, on L∞ when an L∞ attack runs (L2 otherwise); it joins the grid. Leave it empty for the standard budget declared for your kind of input, which the report names.",
};
const NORMS = (fieldOf("EvaluationSpec", "norms").items?.choices ?? []) as ("linf" | "l2")[];
const DEFAULT_NORMS = (fieldOf("EvaluationSpec", "norms").default as string[] | undefined) ?? NORMS;
const CUSTOM_ATTACKS = CUSTOM_PRESET?.attacks ?? [];

export function NewEvaluationPage() {
  return (
    <ForRole role="scientist">
      <EvaluationForm />
    </ForRole>
  );
}

function EvaluationForm() {
  const api = useApi();
  const queries = useQueryClient();
  const navigate = useNavigate();
  const [search] = useSearchParams();
  const models = useModels();
  const jobs = useJobs();
  const [modelId, setModelId] = useState(search.get("model") ?? "");
  const [jobId, setJobId] = useState(search.get("job") ?? "");
  const [preset, setPreset] = useState(DEFAULT_PRESET);
  const [norms, setNorms] = useState<string[]>(DEFAULT_NORMS);
  const [attacks, setAttacks] = useState<string[]>(CUSTOM_ATTACKS);
  const [grids, setGrids] = useState(() => initialValues([...GRID_FIELDS, HEADLINE_FIELD]));
  const [spec, setSpec] = useState(() => initialValues(SPEC_FIELDS));
  const [settings, setSettings] = useState(() => initialValues(CUSTOM_FIELDS));
  const [evaluationSet, setEvaluationSet] = useState<File>();
  const [useUploaded, setUseUploaded] = useState(false);
  const [progress, setProgress] = useState<{ loaded: number; total: number }>();
  const [local, setLocal] = useState<Record<string, string>>({});

  const submitEvaluation = useMutation({
    mutationFn: async (request: { spec: Record<string, unknown>; file?: File }) => {
      const body = { ...request.spec };
      if (request.file) {
        const upload = await api.call((c) => c.POST("/v1/evaluations/uploads", { body: { size_bytes: request.file!.size } }));
        await uploadFile(upload.upload_url, request.file, setProgress);
        body.dataset = upload.dataset;
      }
      return api.call((c) =>
        c.POST("/v1/evaluations", { body: { model_id: modelId, ...(jobId ? { job_id: jobId } : {}), spec: body as never } }),
      );
    },
    onSuccess: (evaluation) => {
      void queries.invalidateQueries({ queryKey: ["evaluations"] });
      navigate(`/evaluations/${evaluation.evaluation_id}`);
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const custom = preset === CUSTOM;
    const specValues = collect(SPEC_FIELDS, spec);
    const gridValues = collect([...GRID_FIELDS, HEADLINE_FIELD], grids);
    const settingValues = custom ? collect(CUSTOM_FIELDS, settings) : { body: {}, errors: {} };
    const errors: Record<string, string> = { ...specValues.errors, ...gridValues.errors, ...settingValues.errors };
    if (!modelId) errors.model_id = "choose the model to evaluate";
    if (custom && attacks.length === 0) errors.attacks = "choose at least one attack";
    if (!custom && norms.length === 0) errors.norms = "choose at least one threat model";
    if (useUploaded && !evaluationSet) errors.dataset = "choose the evaluation set's file, or use the built-in digits";
    setLocal(errors);
    if (Object.keys(errors).length > 0) return;
    // With custom, the attacks chosen decide the norms; another preset fixes its attacks and runs in the norms chosen.
    const attackSet = custom ? { attacks, ...settingValues.body } : { norms };
    submitEvaluation.mutate({
      spec: { preset, ...attackSet, ...specValues.body, ...gridValues.body },
      file: useUploaded ? evaluationSet : undefined,
    });
  }

  if (models.isPending || jobs.isPending) return <Loading what="your models" />;
  if (models.isError) return <ErrorNotice error={models.error} retry={() => void models.refetch()} />;
  if (jobs.isError) return <ErrorNotice error={jobs.error} retry={() => void jobs.refetch()} />;
  const readyModels = models.data.filter((model) => model.status === "ready");
  const trainedJobs = jobs.data.filter((job) => job.model_id === modelId && job.status === "completed");
  const specProblems = problemsUnder(
    submitEvaluation.error,
    "spec",
    [...SPEC_FIELDS, ...GRID_FIELDS, HEADLINE_FIELD, ...CUSTOM_FIELDS].map((f) => f.name).concat("preset", "norms", "attacks", "dataset"),
  );
  const errors = { ...specProblems.byField, ...local };

  return (
    <>
      <PageTitle title="Evaluate robustness" />
      <p>
        The evaluator attacks the model on held-out samples at each perturbation budget ε, and reports the accuracy that
        survives, per attack and in the worst case over them, with confidence intervals and checks for gradient masking.
        The headline is the worst case at one declared budget. Inputs are images scaled to [0, 1], so an L∞ ε is a fraction
        of the pixel range.
      </p>
      <form onSubmit={submit} noValidate aria-label="Evaluate robustness">
        <div className="grid">
          <Field label="Model" error={errors.model_id ?? messagesUnder(submitEvaluation.error, "model_id").join("; ")}>
            {(props) => (
              <select
                {...props}
                name="model_id"
                value={modelId}
                onChange={(e) => {
                  setModelId(e.target.value);
                  setJobId("");
                }}
              >
                <option value="">Choose a model…</option>
                {readyModels.map((model) => (
                  <option key={model.model_id} value={model.model_id}>
                    {model.name}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field
            label="Weights"
            hint="The uploaded weights, or those a completed training job produced."
            error={messagesUnder(submitEvaluation.error, "job_id").join("; ") || undefined}
          >
            {(props) => (
              <select {...props} name="job_id" value={jobId} onChange={(e) => setJobId(e.target.value)}>
                <option value="">as uploaded</option>
                {trainedJobs.map((job) => (
                  <option key={job.job_id} value={job.job_id}>
                    trained by job {job.job_id.slice(0, 8)} ({job.total_rounds} rounds)
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <fieldset aria-describedby={errors.preset ? "preset-error" : undefined}>
          <legend>Attacks</legend>
          {PRESETS.map((option) => (
            <label key={option.name}>
              <input type="radio" name="preset" value={option.name} checked={preset === option.name} onChange={() => setPreset(option.name)} />
              <strong>{option.name}</strong>
              {option.name === DEFAULT_PRESET && " (default)"} {option.summary && <span className="muted">— {option.summary}</span>}
            </label>
          ))}
          {errors.preset && (
            <small id="preset-error" className="field-error">
              {errors.preset}
            </small>
          )}
        </fieldset>
        {preset === CUSTOM ? (
          <>
            <fieldset aria-describedby={errors.attacks ? "attacks-error" : undefined}>
              <legend>Attacks to run, each on every sample</legend>
              {ATTACKS.map((attack) => (
                <label key={attack.name}>
                  <input
                    type="checkbox"
                    name="attacks"
                    value={attack.name}
                    checked={attacks.includes(attack.name)}
                    onChange={(e) => setAttacks((all) => (e.target.checked ? [...all, attack.name] : all.filter((a) => a !== attack.name)))}
                  />
                  <strong>{attack.label}</strong>{" "}
                  {attack.norm && (
                    <span className="muted">
                      ({normLabel(attack.norm)}) — {attack.summary}
                    </span>
                  )}
                </label>
              ))}
              {errors.attacks && (
                <small id="attacks-error" className="field-error">
                  {errors.attacks}
                </small>
              )}
            </fieldset>
            <ConfigFieldset
              legend="Attack settings"
              fields={CUSTOM_FIELDS}
              values={settings}
              onChange={(name, value) => setSettings((all) => ({ ...all, [name]: value }))}
              errors={errors}
              general={[]}
            />
          </>
        ) : (
          <fieldset aria-describedby={errors.norms ? "norms-error" : "preset-plan"}>
            <legend>Threat models</legend>
            {NORMS.map((norm) => (
              <label key={norm}>
                <input
                  type="checkbox"
                  name="norms"
                  value={norm}
                  checked={norms.includes(norm)}
                  onChange={(e) => setNorms((all) => NORMS.filter((n) => (n === norm ? e.target.checked : all.includes(n))))}
                />
                {normLabel(norm)}
              </label>
            ))}
            <small id="preset-plan" className="hint">
              {presetPlan(PRESETS.find((option) => option.name === preset) ?? { name: preset }, norms)}
            </small>
            {errors.norms && (
              <small id="norms-error" className="field-error">
                {errors.norms}
              </small>
            )}
          </fieldset>
        )}
        <fieldset className="config">
          <legend>Perturbation budgets (ε)</legend>
          <div className="grid">
            {GRID_FIELDS.map((field) => (
              <Field
                key={field.name}
                label={field.name === "epsilons_linf" ? "L∞ budgets" : "L2 budgets"}
                hint={`Ascending, comma-separated; each ${limitsText(field.items!)}. Default ${(field.default as number[]).join(", ")}.`}
                error={errors[field.name]}
              >
                {(props) => (
                  <input
                    {...props}
                    name={field.name}
                    placeholder={(field.default as number[]).join(", ")}
                    value={grids[field.name] ?? ""}
                    onChange={(e) => setGrids((all) => ({ ...all, [field.name]: e.target.value }))}
                  />
                )}
              </Field>
            ))}
            <SchemaField
              field={HEADLINE_FIELD}
              value={grids[HEADLINE_FIELD.name] ?? ""}
              onChange={(value) => setGrids((all) => ({ ...all, [HEADLINE_FIELD.name]: value }))}
              error={errors[HEADLINE_FIELD.name]}
            />
          </div>
        </fieldset>
        <ConfigFieldset
          legend="Settings"
          fields={SPEC_FIELDS}
          values={spec}
          onChange={(name, value) => setSpec((all) => ({ ...all, [name]: value }))}
          errors={errors}
          general={specProblems.general}
        />
        <fieldset aria-describedby={errors.dataset ? "dataset-error" : undefined}>
          <legend>Evaluation set</legend>
          <label>
            <input type="radio" name="dataset" checked={!useUploaded} onChange={() => setUseUploaded(false)} />
            the built-in held-out digits (8×8, 10 classes)
          </label>
          <label>
            <input type="radio" name="dataset" checked={useUploaded} onChange={() => setUseUploaded(true)} />
            my own: a safetensors file of <code>inputs</code> (float32 in [0, 1], shaped as the model's input) and{" "}
            <code>labels</code> (int64)
          </label>
          {useUploaded && (
            <input
              type="file"
              aria-label="Evaluation set file"
              accept=".safetensors"
              onChange={(e) => setEvaluationSet(e.target.files?.[0])}
            />
          )}
          {errors.dataset && (
            <small id="dataset-error" className="field-error">
              {errors.dataset}
            </small>
          )}
          <UploadProgress progress={progress} name={evaluationSet?.name ?? "the evaluation set"} />
        </fieldset>
        <FormErrors messages={unclaimed(submitEvaluation.error, ["spec", "model_id", "job_id"])} />
        <button type="submit" aria-busy={submitEvaluation.isPending} disabled={submitEvaluation.isPending}>
          Queue the evaluation
        </button>
      </form>
      <p className="muted">
        The work an evaluation may ask for is capped; the API says what to lower if a request is over it. See{" "}
        <Link to="/evaluations">your evaluations</Link> for those already queued.
      </p>
    </>
  );
}
