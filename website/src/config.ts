/**
 * The deployment's settings, read from /config.json when the site starts.
 *
 * Nothing here is baked into the bundle: the same build runs against the local platform and any
 * AWS stage, and config.json is written beside index.html when the site is deployed. It holds
 * identifiers only; a browser can keep no secret.
 */

export interface SiteConfig {
  /** The orchestrator's base URL; API paths (/v1/...) are appended to it. */
  apiUrl: string;
  region: string;
  userPoolId: string;
  /** The user pool's app client for this website. */
  userPoolClientId: string;
  /** Where Cognito's API is reached, when not at AWS's regional endpoint (the local platform). */
  cognitoEndpoint?: string;
}

export class ConfigError extends Error {}

const REQUIRED = ["apiUrl", "region", "userPoolId", "userPoolClientId"] as const;

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}

/** Checks the document's shape, so a mistyped deployment fails with a message, not a blank page. */
export function parseConfig(document: unknown): SiteConfig {
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new ConfigError("config.json must hold a JSON object");
  }
  const values = document as Record<string, unknown>;
  for (const key of REQUIRED) {
    if (typeof values[key] !== "string" || values[key] === "") {
      throw new ConfigError(`config.json needs "${key}" as a non-empty string`);
    }
  }
  const config: SiteConfig = {
    apiUrl: values.apiUrl as string,
    region: values.region as string,
    userPoolId: values.userPoolId as string,
    userPoolClientId: values.userPoolClientId as string,
  };
  if (!isHttpUrl(config.apiUrl)) {
    throw new ConfigError(`config.json's "apiUrl" is not an http(s) URL: ${config.apiUrl}`);
  }
  if (values.cognitoEndpoint !== undefined) {
    if (typeof values.cognitoEndpoint !== "string" || !isHttpUrl(values.cognitoEndpoint)) {
      throw new ConfigError(`config.json's "cognitoEndpoint" is not an http(s) URL`);
    }
    config.cognitoEndpoint = values.cognitoEndpoint;
  }
  return config;
}

export async function loadConfig(fetcher: typeof fetch = fetch): Promise<SiteConfig> {
  let response: Response;
  try {
    response = await fetcher("/config.json", { cache: "no-store" });
  } catch {
    throw new ConfigError("config.json could not be fetched: check your connection and reload");
  }
  if (!response.ok) {
    throw new ConfigError(
      `config.json answered ${response.status}: the site was deployed without its settings ` +
        "(see CDK_INSTRUCTIONS.md, 'Website')",
    );
  }
  let document: unknown;
  try {
    document = await response.json();
  } catch {
    throw new ConfigError("config.json is not valid JSON");
  }
  return parseConfig(document);
}
