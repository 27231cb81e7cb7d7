import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Schemas } from "../../api/client";
import { type Progress, uploadFile } from "../../api/transfers";
import { useApi } from "../../auth/AuthProvider";
import { bytes, ProgressBar } from "../../components/common";

type Created = Schemas["ModelCreated"];

/**
 * Upload a model's file straight to S3 through its presigned URL, then commit it: the API checks
 * the file (and converts an ONNX one) only at commit. A file the commit refuses can be replaced
 * and committed again while the URL is valid, without registering the model again.
 */
export function useUploadAndCommit() {
  const api = useApi();
  const queries = useQueryClient();
  const [progress, setProgress] = useState<Progress>();

  async function uploadAndCommit(created: Created, file: File) {
    setProgress({ loaded: 0, total: file.size });
    await uploadFile(created.upload_url, file, setProgress);
    const model = await api.call((c) =>
      c.POST("/v1/models/{model_id}/commit", { params: { path: { model_id: created.model.model_id } } }),
    );
    void queries.invalidateQueries({ queryKey: ["models"] });
    return model;
  }

  return { progress, uploadAndCommit, reset: () => setProgress(undefined) };
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
