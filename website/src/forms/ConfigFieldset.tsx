import type { FieldSpec } from "./schema";
import { SchemaField } from "./fields";
import type { Typed } from "./values";

interface Props {
  legend: string;
  description?: string;
  fields: FieldSpec[];
  values: Typed;
  onChange(name: string, value: string): void;
  errors: Record<string, string>;
  general: string[];
}

/** One config object of a request (client_config, server_config, an evaluation spec), field by field. */
export function ConfigFieldset({ legend, description, fields, values, onChange, errors, general }: Props) {
  return (
    <fieldset className="config">
      <legend>{legend}</legend>
      {description && <p className="muted">{description}</p>}
      {general.length > 0 && (
        <div role="alert" className="notice error">
          {general.map((message) => (
            <p key={message}>{message}</p>
          ))}
        </div>
      )}
      <div className="grid-fields">
        {fields.map((field) => (
          <SchemaField
            key={field.name}
            field={field}
            value={values[field.name] ?? ""}
            onChange={(value) => onChange(field.name, value)}
            error={errors[field.name]}
          />
        ))}
      </div>
    </fieldset>
  );
}
