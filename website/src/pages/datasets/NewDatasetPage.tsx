import { useMutation, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useRef, useState } from "react";
import { useNavigate } from "react-router";

import { ApiError, labelOf } from "../../api/errors";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { PageTitle } from "../../components/common";
import {
  ATTRIBUTE_TYPES,
  type AttributeDraft,
  blankAttribute,
  parseAttributesJson,
  takesChoices,
  takesDistribution,
  takesRange,
  toAttribute,
} from "../../forms/attributes";
import { Field, FormErrors } from "../../forms/fields";
import { fieldOf } from "../../forms/schema";

const ROWS = fieldOf("DatasetRegistration", "rows");
const SEED = fieldOf("DatasetRegistration", "seed");

/** The API's problems for this form: by field ("app_name"), by attribute and its field, and the rest. */
function sortProblems(error: unknown) {
  const top: Record<string, string> = {};
  const attributes: Record<number, Record<string, string>> = {};
  const general: string[] = [];
  if (!(error instanceof ApiError)) return { top, attributes, general: error ? [String(error)] : [] };
  if (error.problems.length === 0) general.push(error.message);
  for (const { path, message } of error.problems) {
    const [head, index, field] = path.split(".");
    if (head === "attributes" && index !== undefined && /^\d+$/.test(index)) {
      const slot = (attributes[Number(index)] ??= {});
      const key = field ?? "";
      slot[key] = slot[key] ? `${slot[key]}; ${message}` : message;
    } else if (head === "app_name" || head === "rows" || head === "seed") {
      top[head] = message;
    } else {
      general.push(path ? `${labelOf(path)}: ${message}` : message);
    }
  }
  return { top, attributes, general };
}

export function NewDatasetPage() {
  return (
    <ForRole role="app_developer">
      <DatasetForm />
    </ForRole>
  );
}

function DatasetForm() {
  const api = useApi();
  const queries = useQueryClient();
  const navigate = useNavigate();
  const [appName, setAppName] = useState("");
  const [rows, setRows] = useState("");
  const [seed, setSeed] = useState("");
  const [drafts, setDrafts] = useState<AttributeDraft[]>(() => [blankAttribute()]);
  const [pasting, setPasting] = useState(false);

  const register = useMutation({
    mutationFn: (body: Record<string, unknown>) =>
      // The body is assembled from typed inputs; the API validates every field of it.
      api.call((c) => c.POST("/v1/datasets", { body: body as never })),
    onSuccess: (dataset) => {
      void queries.invalidateQueries({ queryKey: ["datasets"] });
      navigate(`/datasets/${dataset.dataset_id}`);
    },
  });
  const problems = sortProblems(register.error);

  function update(key: number, change: Partial<AttributeDraft>) {
    setDrafts((current) => current.map((draft) => (draft.key === key ? { ...draft, ...change } : draft)));
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const body: Record<string, unknown> = { app_name: appName.trim(), attributes: drafts.map(toAttribute) };
    if (rows.trim()) body.rows = Number(rows);
    if (seed.trim()) body.seed = Number(seed);
    register.mutate(body);
  }

  return (
    <>
      <PageTitle title="Register an app">
        <button type="button" className="secondary outline" onClick={() => setPasting((open) => !open)} aria-expanded={pasting}>
          Paste attributes as JSON
        </button>
      </PageTitle>
      <p>
        Describe the data your app keeps on each device: one attribute per column. Cohort generates a sample
        dataset from this schema, so scientists can try their models before any device trains them. Raw data
        never leaves the devices.
      </p>
      {pasting && (
        <PasteAttributes
          onAttributes={(parsed) => {
            setDrafts(parsed);
            setPasting(false);
          }}
        />
      )}
      <form onSubmit={submit} noValidate aria-label="Dataset registration">
        <div className="grid">
          <Field label="App name" hint="Letters, digits, '_', '.' or '-', starting with a letter." error={problems.top.app_name}>
            {(props) => <input {...props} name="app_name" required value={appName} onChange={(e) => setAppName(e.target.value)} />}
          </Field>
          <Field label="Sample rows" hint={`${ROWS.description}; default ${ROWS.default}.`} error={problems.top.rows}>
            {(props) => (
              <input {...props} name="rows" type="number" min={1} step={1} placeholder={String(ROWS.default)} value={rows} onChange={(e) => setRows(e.target.value)} />
            )}
          </Field>
          <Field label="Seed" hint={SEED.description} error={problems.top.seed}>
            {(props) => <input {...props} name="seed" type="number" min={0} step={1} placeholder="random" value={seed} onChange={(e) => setSeed(e.target.value)} />}
          </Field>
        </div>
        <h2>Attributes</h2>
        <ol className="attributes">
          {drafts.map((draft, index) => (
            <li key={draft.key}>
              <AttributeEditor
                index={index}
                draft={draft}
                problems={problems.attributes[index] ?? {}}
                onChange={(change) => update(draft.key, change)}
                onRemove={drafts.length > 1 ? () => setDrafts((all) => all.filter((d) => d.key !== draft.key)) : undefined}
              />
            </li>
          ))}
        </ol>
        <button type="button" className="secondary" onClick={() => setDrafts((all) => [...all, blankAttribute()])}>
          Add an attribute
        </button>
        <FormErrors messages={problems.general} />
        <button type="submit" aria-busy={register.isPending} disabled={register.isPending}>
          Register the app
        </button>
      </form>
    </>
  );
}

function PasteAttributes({ onAttributes }: { onAttributes(drafts: AttributeDraft[]): void }) {
  const text = useRef<HTMLTextAreaElement>(null);
  const [error, setError] = useState<string>();
  return (
    <section aria-labelledby="paste-title" className="card">
      <h2 id="paste-title">Paste attributes as JSON</h2>
      <Field
        label="Attributes"
        hint='A list such as [{"name": "age", "type": "int", "min": 18, "max": 90}], or a whole registration. It replaces the attributes below.'
        error={error}
      >
        {(props) => <textarea {...props} ref={text} rows={6} className="code" spellCheck={false} />}
      </Field>
      <button
        type="button"
        onClick={() => {
          try {
            onAttributes(parseAttributesJson(text.current?.value ?? ""));
          } catch (failure) {
            setError((failure as Error).message);
          }
        }}
      >
        Use these attributes
      </button>
    </section>
  );
}

interface EditorProps {
  index: number;
  draft: AttributeDraft;
  problems: Record<string, string>;
  onChange(change: Partial<AttributeDraft>): void;
  onRemove?: () => void;
}

function AttributeEditor({ index, draft, problems, onChange, onRemove }: EditorProps) {
  const title = draft.name.trim() || `attribute ${index + 1}`;
  const whole = problems[""];
  return (
    <fieldset className={`attribute ${whole ? "invalid" : ""}`} aria-describedby={whole ? `attribute-${draft.key}-error` : undefined}>
      <legend>{title}</legend>
      {whole && (
        <p id={`attribute-${draft.key}-error`} className="field-error" role="alert">
          {whole}
        </p>
      )}
      <div className="grid">
        <Field label="Name" error={problems.name}>
          {(props) => <input {...props} name={`attributes.${index}.name`} value={draft.name} onChange={(e) => onChange({ name: e.target.value })} />}
        </Field>
        <Field label="Type" error={problems.type}>
          {(props) => (
            <select {...props} name={`attributes.${index}.type`} value={draft.type} onChange={(e) => onChange({ type: e.target.value as AttributeDraft["type"] })}>
              {ATTRIBUTE_TYPES.map((type) => (
                <option key={type} value={type}>
                  {type}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Share left empty" hint="0 to 1: how often the value is null." error={problems.null_ratio}>
          {(props) => (
            <input
              {...props}
              name={`attributes.${index}.null_ratio`}
              type="number"
              min={0}
              max={1}
              step="any"
              placeholder="0"
              value={draft.nullRatio}
              onChange={(e) => onChange({ nullRatio: e.target.value })}
            />
          )}
        </Field>
      </div>
      {draft.type === "string" && (
        <fieldset className="inline">
          <legend>A string takes</legend>
          <label>
            <input type="radio" name={`string-mode-${draft.key}`} checked={draft.stringMode === "length"} onChange={() => onChange({ stringMode: "length" })} />
            random text of a length range
          </label>
          <label>
            <input type="radio" name={`string-mode-${draft.key}`} checked={draft.stringMode === "choices"} onChange={() => onChange({ stringMode: "choices" })} />
            one of a list of choices
          </label>
        </fieldset>
      )}
      {takesRange(draft) && (
        <div className="grid">
          <Field label={draft.type === "string" ? "Shortest (characters)" : "Minimum"} error={problems.min}>
            {(props) => <input {...props} name={`attributes.${index}.min`} type="number" step="any" value={draft.min} onChange={(e) => onChange({ min: e.target.value })} />}
          </Field>
          <Field label={draft.type === "string" ? "Longest (characters)" : "Maximum"} error={problems.max}>
            {(props) => <input {...props} name={`attributes.${index}.max`} type="number" step="any" value={draft.max} onChange={(e) => onChange({ max: e.target.value })} />}
          </Field>
          {draft.type === "float" && (
            <Field label="Decimals" hint="Round values to this many decimals (optional)." error={problems.decimals}>
              {(props) => (
                <input {...props} name={`attributes.${index}.decimals`} type="number" min={0} max={10} step={1} value={draft.decimals} onChange={(e) => onChange({ decimals: e.target.value })} />
              )}
            </Field>
          )}
        </div>
      )}
      {takesChoices(draft) && (
        <Field label="Choices" hint="One per line." error={problems.choices}>
          {(props) => <textarea {...props} name={`attributes.${index}.choices`} rows={3} value={draft.choices} onChange={(e) => onChange({ choices: e.target.value })} />}
        </Field>
      )}
      {takesDistribution(draft) && (
        <div className="grid">
          <Field label="Distribution" error={problems.distribution}>
            {(props) => (
              <select {...props} value={draft.distribution} onChange={(e) => onChange({ distribution: e.target.value as AttributeDraft["distribution"] })}>
                <option value="uniform">uniform over the range</option>
                <option value="normal">normal, truncated to the range</option>
              </select>
            )}
          </Field>
          {draft.distribution === "normal" && (
            <>
              <Field label="Mean">
                {(props) => <input {...props} name={`attributes.${index}.mean`} type="number" step="any" value={draft.mean} onChange={(e) => onChange({ mean: e.target.value })} />}
              </Field>
              <Field label="Standard deviation">
                {(props) => <input {...props} name={`attributes.${index}.std`} type="number" step="any" min={0} value={draft.std} onChange={(e) => onChange({ std: e.target.value })} />}
              </Field>
            </>
          )}
        </div>
      )}
      {onRemove && (
        <button type="button" className="secondary outline small" onClick={onRemove}>
          Remove {title}
        </button>
      )}
    </fieldset>
  );
}
