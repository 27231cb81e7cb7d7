import { type FormEvent, useState } from "react";
import { Link, useNavigate } from "react-router";

import { describe } from "../../api/errors";
import { useApi } from "../../auth/AuthProvider";
import { ForRole } from "../../auth/guards";
import { PageTitle } from "../../components/common";
import { Field, FormErrors } from "../../forms/fields";
import { messagesUnder, unclaimed } from "../../forms/values";
import { RegistrationRefused, UploadProgress, useModelUpload } from "./UploadStep";

export function ImportModelPage() {
  return (
    <ForRole role="scientist">
      <ImportForm />
    </ForRole>
  );
}

function ImportForm() {
  const api = useApi();
  const navigate = useNavigate();
  const upload = useModelUpload();
  const [name, setName] = useState("");
  const [file, setFile] = useState<File>();
  const [errors, setErrors] = useState<{ name?: string; file?: string; general?: string[] }>({});
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = {
      name: name.trim() ? undefined : "give the model a name",
      file: file ? undefined : "choose an .onnx file",
    };
    setErrors(found);
    if (found.name || !file) return;
    setBusy(true);
    try {
      const model = await upload.submit(
        () => api.call((c) => c.POST("/v1/models/imports", { body: { name: name.trim(), format: "onnx" } })),
        file,
      );
      navigate(`/models/${model.model_id}`);
    } catch (failure) {
      setErrors(
        failure instanceof RegistrationRefused
          ? { name: messagesUnder(failure.refusal, "name").join("; ") || undefined, general: unclaimed(failure.refusal, ["name"]) }
          : { file: describe(failure) },
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <PageTitle title="Import an ONNX model" />
      <p>
        Export your Keras or PyTorch model to ONNX (<code>tf2onnx.convert.from_keras</code>, <code>torch.onnx.export</code>)
        and upload the file. Cohort converts it once, in a sandbox with no credentials and tight memory and time limits,
        into its own format: an architecture of allowed layers and safetensors weights. If something in the file cannot be
        imported, the error says what. <Link to="/models/new">Or write the architecture yourself.</Link>
      </p>
      <form onSubmit={submit} noValidate aria-label="Import an ONNX model">
        <Field label="Name" error={errors.name}>
          {(props) => <input {...props} name="name" value={name} disabled={upload.registered} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="ONNX file" hint="A single chain of layers; at most 128 MB." error={errors.file}>
          {(props) => (
            <input
              {...props}
              name="onnx"
              type="file"
              accept=".onnx"
              onChange={(e) => {
                setFile(e.target.files?.[0]);
                upload.fileChanged();
              }}
            />
          )}
        </Field>
        <UploadProgress progress={upload.progress} name={file?.name ?? "the ONNX file"} />
        <FormErrors messages={errors.general ?? []} />
        <button type="submit" aria-busy={busy} disabled={busy}>
          {upload.registered ? "Upload this file" : "Import"}
        </button>
      </form>
    </>
  );
}
