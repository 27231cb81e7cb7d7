import { describe, expect, it } from "vitest";

import { Api, type Credentials } from "../src/api/client";
import { ApiError } from "../src/api/errors";

const JOB = { job_id: "j1", status: "running" };

/** A fake API that records what it was sent and answers from a script. */
function server(answers: ((request: Request) => Response)[]) {
  const seen: Request[] = [];
  const fetcher = (async (input: Request) => {
    seen.push(input);
    const answer = answers.shift();
    if (!answer) throw new Error("no more answers scripted");
    return answer(input);
  }) as unknown as typeof fetch;
  return { seen, fetcher };
}

function credentials(tokens: string[], onReauth: () => Promise<void> = async () => undefined) {
  let reauthentications = 0;
  const source: Credentials & { reauthentications(): number } = {
    idToken: async () => tokens[0],
    reauthenticate: async () => {
      reauthentications += 1;
      tokens.shift();
      await onReauth();
    },
    reauthentications: () => reauthentications,
  };
  return source;
}

const json = (status: number, body: unknown) => () =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

describe("Api.call", () => {
  it("sends the person's ID token to the orchestrator's URL, whatever the stage's path", async () => {
    const { seen, fetcher } = server([json(200, JOB)]);
    const api = new Api("https://api.example/dev/", credentials(["id-token-1"]), fetcher);
    const job = await api.call((c) => c.GET("/v1/jobs/{job_id}", { params: { path: { job_id: "j1" } } }));
    expect(job).toEqual(JOB);
    expect(seen[0]!.url).toBe("https://api.example/dev/v1/jobs/j1");
    expect(seen[0]!.headers.get("Authorization")).toBe("Bearer id-token-1");
  });

  it("asks the person to sign in again on a 401 and repeats the request once with the new token", async () => {
    const { seen, fetcher } = server([json(401, { detail: "invalid ID token: Signature has expired" }), json(200, JOB)]);
    const source = credentials(["expired", "fresh"]);
    const api = new Api("https://api.example", source, fetcher);
    const job = await api.call((c) => c.GET("/v1/jobs/{job_id}", { params: { path: { job_id: "j1" } } }));
    expect(job).toEqual(JOB);
    expect(source.reauthentications()).toBe(1);
    expect(seen.map((request) => request.headers.get("Authorization"))).toEqual(["Bearer expired", "Bearer fresh"]);
  });

  it("repeats a POST with its body intact after signing in again", async () => {
    const { seen, fetcher } = server([json(401, {}), json(201, JOB)]);
    const api = new Api("https://api.example", credentials(["old", "new"]), fetcher);
    await api.call((c) => c.POST("/v1/jobs", { body: { model_id: "m", dataset_id: "d" } }));
    expect(await seen[1]!.json()).toEqual({ model_id: "m", dataset_id: "d" });
  });

  it("gives up with the refusal if the person declines to sign in again", async () => {
    const { fetcher } = server([json(401, {})]);
    const declined = credentials(["old"], async () => {
      throw new ApiError(401, "You signed out.");
    });
    const api = new Api("https://api.example", declined, fetcher);
    await expect(api.call((c) => c.GET("/v1/models"))).rejects.toThrow("You signed out.");
  });

  it("turns a validation error into problems placed on their fields", async () => {
    const errors = [{ loc: ["body", "server_config", "min_reports"], msg: "Input should be greater than or equal to 1", type: "greater_than_equal" }];
    const { fetcher } = server([json(422, { detail: "1 problem with the request", errors })]);
    const api = new Api("https://api.example", credentials(["t"]), fetcher);
    const error = await api.call((c) => c.POST("/v1/jobs", { body: { model_id: "m", dataset_id: "d" } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(422);
    expect((error as ApiError).about("server_config")).toEqual([{ path: "server_config.min_reports", message: "must be at least 1" }]);
  });

  it("says the API cannot be reached, and where it was looked for, when the network fails", async () => {
    const fetcher = (async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch;
    const api = new Api("http://127.0.0.1:9", credentials(["t"]), fetcher);
    await expect(api.call((c) => c.GET("/v1/models"))).rejects.toThrow("Cohort's API at http://127.0.0.1:9 cannot be reached");
  });
});
