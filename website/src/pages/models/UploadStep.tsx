import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Schemas } from "../../api/client";
import { type Progress, uploadFile } from "../../api/transfers";
import { useApi } from "../../auth/AuthProvider";
import { bytes, ProgressBar } from "../../components/common";

type Created = Schemas["ModelCreated"];

/** The API refused to register the model: its problems are about the form, not the file. */
export class RegistrationRefused extends Error {
  readonly refusal: unknown;

  constructor(refusal: unknown) {
    super(refusal instanceof Error ? refusal.message : String(refusal));
    this.refusal = refusal;
  }
}

/**
 * Register a model, upload its file straight to S3 through the presigned URL, then commit it: the
 * API checks the file (and converts an ONNX one) only at commit. A file the commit refuses can be
 * replaced and sent again while the URL is valid, under the same registration.
 */
export function useModelUpload() {
  const api = useApi();
  const queries = useQueryClient();
  const [created, setCreated] = useState<Created>();
  const [progress, setProgress] = useState<Progress>();

  async function submit(register: () => Promise<Created>, file: File): Promise<Schemas["ModelView"]> {
    const registration = created ?? (await registerOnce(register));
    setCreated(registration);
    setProgress({ loaded: 0, total: file.size });
    await uploadFile(registration.upload_url, file, setProgress);
    const model = await api.call((c) =>
      c.POST("/v1/models/{model_id}/commit", { params: { path: { model_id: registration.model.model_id } } }),
    );
    void queries.invalidateQueries({ queryKey: ["models"] });
    return model;
  }

  return { registered: created !== undefined, progress, submit, fileChanged: () => setProgress(undefined) };
}

async function registerOnce(register: () => Promise<Created>): Promise<Created> {
  try {
    return await register();
  } catch (refusal) {
    throw new RegistrationRefused(refusal);
  }
}

/** Progress of a file going straight to S3, as a bar with words. */
export function UploadProgress({ progress, name }: { progress: Progress | undefined; name: string }) {
  if (!progress) return null;
  const fraction = progress.total ? progress.loaded / progress.total : 0;
  return (
    <div role="status" aria-live="polite" className="upload-progress">
      <ProgressBar value={fraction} label={`Uploading ${name}`} />
      <small className="muted">
        {fraction >= 1 ? `${bytes(progress.total)} uploaded; checking it…` : `${bytes(progress.loaded)} of ${bytes(progress.total)} uploaded`}
      </small>
    </div>
  );
}
