/**
 * The one typed client of the orchestrator's API.
 *
 * Paths, parameters and bodies are typed from `docs/openapi/orchestrator.json` (generated into
 * schema.gen.ts at every build), so a route the API changes breaks the build, not the page.
 * Every request carries the signed-in person's ID token; a 401 asks them to sign in again and
 * then repeats the request once, so nothing they typed is lost.
 */
import createClient, { type Client } from "openapi-fetch";

import { ApiError, errorFromResponse, unreachable } from "./errors";
import type { components, paths } from "./schema.gen";

export type Schemas = components["schemas"];
export type ApiClient = Client<paths>;

export interface Credentials {
  /** The current ID token, refreshed if it has expired; undefined when no one is signed in. */
  idToken(): Promise<string | undefined>;
  /** Resolves once the person has signed in again; rejects if they decline. */
  reauthenticate(): Promise<void>;
}

type Result<T> = { data?: T; error?: unknown; response: Response };

export class Api {
  readonly client: ApiClient;
  private readonly baseUrl: string;
  private readonly credentials: Credentials;

  constructor(baseUrl: string, credentials: Credentials, fetcher: typeof fetch = (...a) => fetch(...a)) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.credentials = credentials;
    this.client = createClient<paths>({ baseUrl: this.baseUrl, fetch: fetcher });
    this.client.use({
      onRequest: async ({ request }) => {
        const token = await credentials.idToken();
        if (token) request.headers.set("Authorization", `Bearer ${token}`);
        return request;
      },
    });
  }

  /**
   * Run one operation and return its data, or throw an ApiError in plain words.
   *
   *     const job = await api.call((c) => c.GET("/v1/jobs/{job_id}", { params: { path: { job_id } } }));
   */
  async call<T>(operation: (client: ApiClient) => Promise<Result<T>>): Promise<T> {
    let result = await this.attempt(operation);
    if (result.response.status === 401) {
      await this.credentials.reauthenticate();
      result = await this.attempt(operation);
    }
    if (result.error !== undefined || !result.response.ok) {
      throw errorFromResponse(result.response.status, result.error, result.response.headers.get("Retry-After"));
    }
    return result.data as T;
  }

  private async attempt<T>(operation: (client: ApiClient) => Promise<Result<T>>): Promise<Result<T>> {
    try {
      return await operation(this.client);
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw unreachable(this.baseUrl);
    }
  }
}
