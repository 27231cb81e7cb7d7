import { describe, expect, it } from "vitest";

import { ConfigError, loadConfig, parseConfig } from "../src/config";

const VALID = {
  apiUrl: "https://abc.execute-api.us-east-1.amazonaws.com/dev/",
  region: "us-east-1",
  userPoolId: "us-east-1_abc",
  userPoolClientId: "client123",
};

describe("parseConfig", () => {
  it("takes a stage's settings as they are deployed", () => {
    expect(parseConfig(VALID)).toEqual(VALID);
  });

  it("keeps the local platform's Cognito endpoint", () => {
    const local = { ...VALID, apiUrl: "http://127.0.0.1:8000", cognitoEndpoint: "http://127.0.0.1:8001" };
    expect(parseConfig(local).cognitoEndpoint).toBe("http://127.0.0.1:8001");
  });

  it("keeps only the settings it knows, so nothing else placed in the file reaches the app", () => {
    const config = parseConfig({ ...VALID, clientSecret: "s3cr3t" });
    expect(Object.keys(config).sort()).toEqual(["apiUrl", "region", "userPoolClientId", "userPoolId"]);
  });

  it.each([
    [{ ...VALID, apiUrl: undefined }, 'needs "apiUrl"'],
    [{ ...VALID, userPoolClientId: "" }, 'needs "userPoolClientId"'],
    [{ ...VALID, apiUrl: "javascript:alert(1)" }, "not an http(s) URL"],
    [{ ...VALID, cognitoEndpoint: 42 }, '"cognitoEndpoint" is not an http(s) URL'],
    [[VALID], "must hold a JSON object"],
  ])("refuses a mistyped deployment with a message (%#)", (document, message) => {
    expect(() => parseConfig(document)).toThrow(message);
  });
});

describe("loadConfig", () => {
  it("reads /config.json fresh on every start", async () => {
    const requests: [string, RequestInit | undefined][] = [];
    const fetcher = (async (url: string, init?: RequestInit) => {
      requests.push([url, init]);
      return new Response(JSON.stringify(VALID));
    }) as typeof fetch;
    await expect(loadConfig(fetcher)).resolves.toEqual(VALID);
    expect(requests).toEqual([["/config.json", { cache: "no-store" }]]);
  });

  it("says where to look when the site was deployed without its settings", async () => {
    const fetcher = (async () => new Response("not found", { status: 404 })) as unknown as typeof fetch;
    await expect(loadConfig(fetcher)).rejects.toThrow(ConfigError);
    await expect(loadConfig(fetcher)).rejects.toThrow("CDK_INSTRUCTIONS.md");
  });
});
