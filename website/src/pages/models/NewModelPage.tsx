import { type FormEvent, useState } from "react";
import { useNavigate } from "react-router";

import { describe } from "../../api/errors";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { PageTitle } from "../../components/common";
import { Field, FormErrors } from "../../forms/fields";
import { messagesUnder, unclaimed } from "../../forms/values";
import { EXAMPLE_ARCHITECTURES, parseJsonWithPosition } from "./examples";
import { LayerReference } from "./LayerReference";
import { RegistrationRefused, UploadProgress, useModelUpload } from "./UploadStep";

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

export function NewModelPage() {
  return (
    <ForRole role="scientist">
      <ModelForm />
    </ForRole>
  );
}

function ModelForm() {
  const api = useApi();
  const navigate = useNavigate();
  const upload = useModelUpload();
  const [name, setName] = useState("");
  const [spec, setSpec] = useState(pretty(EXAMPLE_ARCHITECTURES.cnn!.spec));
  const [file, setFile] = useState<File>();
  const [errors, setErrors] = useState<{ name?: string; spec?: string[]; file?: string; general?: string[] }>({});
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const parsed = parseJsonWithPosition(spec);
    const found = {
      name: name.trim() ? undefined : "give the model a name",
      spec: "error" in parsed ? [`The architecture is ${parsed.error}`] : undefined,
      file: file ? undefined : "choose the model's initial weights (.safetensors)",
    };
    setErrors(found);
    if (found.name || found.spec || !file || "error" in parsed) return;
    setBusy(true);
    try {
      const model = await upload.submit(
        () => api.call((c) => c.POST("/v1/models", { body: { name: name.trim(), architecture: parsed.value as never } })),
        file,
      );
      navigate(`/models/${model.model_id}`);
    } catch (failure) {
      setErrors(
        failure instanceof RegistrationRefused
          ? {
              name: messagesUnder(failure.refusal, "name").join("; ") || undefined,
              spec: messagesUnder(failure.refusal, "architecture"),
              general: unclaimed(failure.refusal, ["name", "architecture"]),
            }
          : { file: describe(failure) },
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <PageTitle title="New model" />
      <div className="with-aside">
        <form onSubmit={submit} noValidate aria-label="New model">
          <Field label="Name" error={errors.name}>
            {(props) => <input {...props} name="name" value={name} disabled={upload.registered} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <Field label="Start from an example" hint="Replaces the architecture below.">
            {(props) => (
              <select {...props} disabled={upload.registered} defaultValue="cnn" onChange={(e) => setSpec(pretty(EXAMPLE_ARCHITECTURES[e.target.value]!.spec))}>
                {Object.entries(EXAMPLE_ARCHITECTURES).map(([key, example]) => (
                  <option key={key} value={key}>
                    {example.label}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field
            label="Architecture (JSON)"
            hint="input_shape, num_classes and the layers, from the list beside this form. The API checks that every layer fits the one before it."
            error={errors.spec?.length ? errors.spec.join(" · ") : undefined}
          >
            {(props) => (
              <textarea
                {...props}
                name="architecture"
                className="code"
                rows={18}
                spellCheck={false}
                disabled={upload.registered}
                value={spec}
                onChange={(e) => setSpec(e.target.value)}
              />
            )}
          </Field>
          <Field
            label="Initial weights (.safetensors)"
            hint="One float32 tensor per parameter, named as PyTorch names them in nn.Sequential: 0.weight, 0.bias, … (safetensors.torch.save_file(model.state_dict(), path))."
            error={errors.file}
          >
            {(props) => (
              <input
                {...props}
                name="weights"
                type="file"
                accept=".safetensors,application/octet-stream"
                onChange={(e) => {
                  setFile(e.target.files?.[0]);
                  upload.fileChanged();
                }}
              />
            )}
          </Field>
          <UploadProgress progress={upload.progress} name={file?.name ?? "weights"} />
          <FormErrors messages={errors.general ?? []} />
          <button type="submit" aria-busy={busy} disabled={busy}>
            {upload.registered ? "Upload these weights" : "Create the model"}
          </button>
        </form>
        <LayerReference />
      </div>
    </>
  );
}
