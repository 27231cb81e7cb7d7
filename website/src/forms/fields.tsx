/** Labelled inputs with their hint and error tied to them for screen readers. */
import { type ReactNode, useId } from "react";

import { type FieldSpec, limitsText } from "./schema";

export interface InputProps {
  id: string;
  "aria-describedby"?: string;
  "aria-invalid"?: true;
}

interface FieldProps {
  label: string;
  hint?: string;
  error?: string;
  children(props: InputProps): ReactNode;
}

export function Field({ label, hint, error, children }: FieldProps) {
  const id = useId();
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children({ id, "aria-describedby": described || undefined, "aria-invalid": error ? true : undefined })}
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

interface SchemaFieldProps {
  field: FieldSpec;
  value: string;
  onChange(value: string): void;
  error?: string;
  label?: string;
}

/** A number or boolean property of an API schema, with the API's limits and default as its hint. */
export function SchemaField({ field, value, onChange, error, label }: SchemaFieldProps) {
  const hint = [field.description, limitsText(field)].filter(Boolean).join(" — ");
  if (field.type === "boolean") {
    const id = `bool-${field.name}`;
    return (
      <div className="field">
        <label htmlFor={id}>
          <input
            id={id}
            type="checkbox"
            role="switch"
            checked={value === "true"}
            onChange={(event) => onChange(String(event.target.checked))}
            aria-describedby={`${id}-hint`}
          />
          {label ?? field.label}
        </label>
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      </div>
    );
  }
  return (
    <Field label={label ?? field.label} hint={hint} error={error}>
      {(props) => (
        <input
          {...props}
          name={field.name}
          type="number"
          inputMode={field.type === "integer" ? "numeric" : "decimal"}
          step={field.type === "integer" ? 1 : "any"}
          min={field.minimum ?? field.exclusiveMinimum}
          max={field.maximum ?? field.exclusiveMaximum}
          placeholder={field.default === undefined || field.default === null ? "" : String(field.default)}
          value={value}
          onChange={(event) => onChange(event.target.value)}
        />
      )}
    </Field>
  );
}

/** The API's problems that no field on the form shows, listed above the submit button. */
export function FormErrors({ messages }: { messages: string[] }) {
  if (messages.length === 0) return null;
  return (
    <div role="alert" className="notice error">
      {messages.length === 1 ? (
        <p>{messages[0]}</p>
      ) : (
        <ul>
          {messages.map((message) => (
            <li key={message}>{message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
