/**
 * The API's resources as TanStack Query hooks: cached per person (the cache is cleared when
 * someone else signs in), refetched live while something runs.
 */
import { useQuery } from "@tanstack/react-query";

import { useApi } from "../auth/AuthProvider";
import type { Schemas } from "./client";

export type Dataset = Schemas["DatasetView"];
export type Model = Schemas["ModelView"];
export type Job = Schemas["JobView"];
export type Round = Schemas["RoundView"];
export type Evaluation = Schemas["EvaluationView"];
export type ApiKey = Schemas["ApiKeyView"];

/** How often pages that watch running work ask again. */
export const LIVE_INTERVAL_MS = 2000;

const OPEN_JOB = new Set(["starting", "running"]);
const OPEN_EVALUATION = new Set(["queued", "running"]);

export function isOpenJob(job: Pick<Job, "status"> | undefined): boolean {
  return job !== undefined && OPEN_JOB.has(job.status);
}

export function isOpenEvaluation(evaluation: Pick<Evaluation, "status"> | undefined): boolean {
  return evaluation !== undefined && OPEN_EVALUATION.has(evaluation.status);
}

export function useDatasets(mine: boolean) {
  const api = useApi();
  return useQuery({
    queryKey: ["datasets", mine ? "mine" : "all"],
    queryFn: () => api.call((c) => c.GET("/v1/datasets", { params: { query: { mine } } })),
    // A new dataset's sample is generated within seconds; show it turn ready.
    refetchInterval: (query) =>
      query.state.data?.some((dataset) => dataset.status === "registered") ? LIVE_INTERVAL_MS : false,
  });
}

export function useDataset(datasetId: string) {
  const api = useApi();
  return useQuery({
    queryKey: ["datasets", datasetId],
    queryFn: () => api.call((c) => c.GET("/v1/datasets/{dataset_id}", { params: { path: { dataset_id: datasetId } } })),
    refetchInterval: (query) => (query.state.data?.status === "registered" ? LIVE_INTERVAL_MS : false),
  });
}

export function useApiKeys(datasetId: string, enabled: boolean) {
  const api = useApi();
  return useQuery({
    queryKey: ["datasets", datasetId, "api-keys"],
    enabled,
    queryFn: () =>
      api.call((c) => c.GET("/v1/datasets/{dataset_id}/api-keys", { params: { path: { dataset_id: datasetId } } })),
  });
}

export function useDatasetJobs(datasetId: string, enabled: boolean) {
  const api = useApi();
  return useQuery({
    queryKey: ["datasets", datasetId, "jobs"],
    enabled,
    queryFn: () =>
      api.call((c) => c.GET("/v1/datasets/{dataset_id}/jobs", { params: { path: { dataset_id: datasetId } } })),
    refetchInterval: (query) => (query.state.data?.some(isOpenJob) ? LIVE_INTERVAL_MS * 2 : false),
  });
}

export function useModels() {
  const api = useApi();
  return useQuery({ queryKey: ["models"], queryFn: () => api.call((c) => c.GET("/v1/models")) });
}

export function useModel(modelId: string) {
  const api = useApi();
  return useQuery({
    queryKey: ["models", modelId],
    queryFn: () => api.call((c) => c.GET("/v1/models/{model_id}", { params: { path: { model_id: modelId } } })),
  });
}

export function useJobs() {
  const api = useApi();
  return useQuery({
    queryKey: ["jobs"],
    queryFn: () => api.call((c) => c.GET("/v1/jobs")),
    refetchInterval: (query) => (query.state.data?.some(isOpenJob) ? LIVE_INTERVAL_MS * 2 : false),
  });
}

export function useJob(jobId: string) {
  const api = useApi();
  return useQuery({
    queryKey: ["jobs", jobId],
    queryFn: () => api.call((c) => c.GET("/v1/jobs/{job_id}", { params: { path: { job_id: jobId } } })),
    refetchInterval: (query) => (isOpenJob(query.state.data) ? LIVE_INTERVAL_MS : false),
  });
}

export function useEvaluations() {
  const api = useApi();
  return useQuery({
    queryKey: ["evaluations"],
    queryFn: () => api.call((c) => c.GET("/v1/evaluations")),
    refetchInterval: (query) => (query.state.data?.some(isOpenEvaluation) ? LIVE_INTERVAL_MS * 2 : false),
  });
}

export function useEvaluation(evaluationId: string) {
  const api = useApi();
  return useQuery({
    queryKey: ["evaluations", evaluationId],
    queryFn: () =>
      api.call((c) => c.GET("/v1/evaluations/{evaluation_id}", { params: { path: { evaluation_id: evaluationId } } })),
    refetchInterval: (query) => (isOpenEvaluation(query.state.data) ? LIVE_INTERVAL_MS : false),
  });
}
