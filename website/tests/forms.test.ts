import { describe, expect, it } from "vitest";

import { ApiError, errorFromResponse } from "../src/api/errors";
import { blankAttribute, fromAttribute, parseAttributesJson, toAttribute } from "../src/forms/attributes";
import { fieldOf, fieldsOf, layerCatalogue, limitsText, parseNumber, parseNumberList } from "../src/forms/schema";
import { collect, initialValues, messagesUnder, problemsUnder, unclaimed } from "../src/forms/values";
import { passwordProblem } from "../src/pages/auth/SignUpPage";

describe("fields read from the API's OpenAPI document", () => {
  it("carry the server config's defaults and limits", () => {
    const rounds = fieldOf("ServerConfig", "rounds");
    expect(rounds).toMatchObject({ type: "integer", minimum: 1, maximum: 10000, default: 10 });
    expect(limitsText(rounds)).toBe("1 to 10,000 · whole number · default 10");
  });

  it("say a bound is exclusive when the API's is", () => {
    const learningRate = fieldOf("ClientConfig", "learning_rate");
    expect(learningRate.exclusiveMinimum).toBe(0);
    expect(limitsText(learningRate)).toBe("more than 0, up to 10 · default 0.05");
  });

  it("know an optional field from its null type", () => {
    expect(fieldOf("ServerConfig", "cohort_size")).toMatchObject({ nullable: true, type: "integer", maximum: 100000 });
  });

  it("list every layer of the architecture allow-list with its parameters", () => {
    const layers = Object.fromEntries(layerCatalogue().map((layer) => [layer.type, layer.fields.map((f) => f.name)]));
    expect(layers.Conv2d).toEqual(expect.arrayContaining(["in_channels", "out_channels", "kernel_size", "stride", "padding"]));
    expect(layers.ReLU).toEqual([]);
    expect(Object.keys(layers)).toEqual(expect.arrayContaining(["Linear", "MaxPool2d", "Flatten", "Dropout", "BatchNorm2d"]));
  });
});

describe("parseNumber", () => {
  const batch = fieldOf("ClientConfig", "batch_size");
  it.each([
    ["", { value: undefined }],
    ["64", { value: 64 }],
    [" 8 ", { value: 8 }],
    ["2.5", { error: "must be a whole number" }],
    ["0", { error: "must be at least 1" }],
    ["5000", { error: "must be at most 4,096" }],
    ["many", { error: "must be a number" }],
  ])("%j", (text, expected) => {
    expect(parseNumber(text, batch)).toEqual(expected);
  });

  it("refuses the exclusive bound itself", () => {
    expect(parseNumber("0", fieldOf("ClientConfig", "learning_rate"))).toEqual({ error: "must be more than 0" });
  });

  it("reads an ε grid item by item", () => {
    const grid = fieldOf("EvaluationSpec", "epsilons_linf");
    expect(parseNumberList("0, 0.05,0.1", grid)).toEqual({ value: [0, 0.05, 0.1] });
    expect(parseNumberList("0, 2", grid)).toEqual({ error: '"2" must be at most 1' });
  });
});

describe("collect", () => {
  const fields = fieldsOf("ServerConfig");
  it("leaves empty fields out, so the API's defaults apply", () => {
    const typed = { ...initialValues(fields), rounds: "3", min_reports: "2" };
    expect(collect(fields, typed)).toEqual({
      body: { rounds: 3, min_reports: 2, require_unmetered_network: false, retain_updates: false },
      errors: {},
    });
  });

  it("says which fields cannot be sent as typed", () => {
    const { errors } = collect(fields, { ...initialValues(fields), rounds: "0", round_deadline_seconds: "-1" });
    expect(errors).toEqual({ rounds: "must be at least 1", round_deadline_seconds: "must be more than 0" });
  });
});

describe("the API's problems on the training form", () => {
  const error = errorFromResponse(422, {
    detail: "3 problems with the request",
    errors: [
      { loc: ["body", "server_config", "rounds"], msg: "Input should be less than or equal to 10000", type: "less_than_equal" },
      { loc: ["body", "server_config"], msg: "Value error, min_reports (5) exceeds max_reports (2)", type: "value_error" },
      { loc: ["body", "model_id"], msg: "Field required", type: "missing" },
    ],
  });

  it("sit beside their field, or at the top of their config when about all of it", () => {
    expect(problemsUnder(error, "server_config", ["rounds", "min_reports"])).toEqual({
      byField: { rounds: "must be at most 10000" },
      general: ["server config: min_reports (5) exceeds max_reports (2)"],
    });
  });

  it("leave what no part of the form shows for its foot", () => {
    expect(unclaimed(error, ["server_config"])).toEqual(["model id: is required"]);
    expect(messagesUnder(error, "model_id")).toEqual(["is required"]);
  });

  it("show the API's words when they name no field", () => {
    const refusal = new ApiError(409, "the model's weights have not been committed");
    expect(unclaimed(refusal, ["server_config"])).toEqual(["the model's weights have not been committed"]);
  });
});

describe("attribute drafts", () => {
  it("send only what the attribute's type takes", () => {
    const draft = { ...blankAttribute("category"), name: " label ", min: "1", max: "9", choices: "cat\n\ndog\n" };
    expect(toAttribute(draft)).toEqual({ name: "label", type: "category", choices: ["cat", "dog"] });
  });

  it("send a normal distribution with its parameters", () => {
    const draft = { ...blankAttribute("int"), name: "age", min: "18", max: "90", distribution: "normal" as const, mean: "40", std: "12", nullRatio: "0.1" };
    expect(toAttribute(draft)).toEqual({
      name: "age",
      type: "int",
      min: 18,
      max: 90,
      distribution: { kind: "normal", mean: 40, std: 12 },
      null_ratio: 0.1,
    });
  });

  it("send what cannot be read as a number as typed, for the API to name", () => {
    expect(toAttribute({ ...blankAttribute("float"), name: "x", min: "low", max: "1" })).toMatchObject({ min: "low", max: 1 });
  });

  it("survive a round trip through the API's form", () => {
    const attribute = { name: "city", type: "string", choices: ["Oslo", "Lima"], null_ratio: 0.25 };
    expect(toAttribute(fromAttribute(attribute))).toEqual(attribute);
  });

  it("come from pasted JSON, or say what is wrong with it", () => {
    expect(parseAttributesJson('{"attributes": [{"name": "b", "type": "bool"}]}').map(toAttribute)).toEqual([{ name: "b", type: "bool" }]);
    expect(() => parseAttributesJson("[1]")).toThrow("Attribute 1 is not an object.");
    expect(() => parseAttributesJson("{")).toThrow("That is not JSON");
    expect(() => parseAttributesJson("[]")).toThrow("Paste a list of attributes");
  });
});

describe("passwordProblem", () => {
  it("lists everything the pool's policy still needs", () => {
    expect(passwordProblem("short")).toBe("needs 12 characters, an upper-case letter, a digit, a symbol");
    expect(passwordProblem("Long-enough-passw0rd")).toBeUndefined();
  });
});
