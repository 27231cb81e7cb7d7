import { describe, expect, it } from "vitest";

import { errorFromResponse, labelOf, plainWords, problemsOf } from "../src/api/errors";

describe("problemsOf", () => {
  it("places each validation error on the field it names, in plain words", () => {
    const body = {
      detail: "2 problems with the request",
      errors: [
        { loc: ["body", "server_config", "rounds"], msg: "Input should be less than or equal to 10000", type: "less_than_equal" },
        { loc: ["body", "client_config", "batch_size"], msg: "Field required", type: "missing" },
      ],
    };
    expect(problemsOf(body)).toEqual([
      { path: "server_config.rounds", message: "must be at most 10000" },
      { path: "client_config.batch_size", message: "is required" },
    ]);
  });

  it("reads the field a platform refusal starts with", () => {
    expect(problemsOf({ detail: "spec.dataset: 'digits' or the 'dataset' of an evaluation set you uploaded" })).toEqual([
      { path: "spec.dataset", message: "'digits' or the 'dataset' of an evaluation set you uploaded" },
    ]);
  });

  it("keeps a refusal about nothing in particular whole", () => {
    expect(problemsOf({ detail: "the model's weights have not been committed; upload them and call commit first" })).toEqual([
      { path: "", message: "the model's weights have not been committed; upload them and call commit first" },
    ]);
  });

  it("reads a refusal's sentence when it names no field problems", () => {
    expect(problemsOf({ detail: "you have 3 training jobs that have not ended", errors: [] })).toEqual([
      { path: "", message: "you have 3 training jobs that have not ended" },
    ]);
  });

  it("reads API Gateway's own error shape", () => {
    expect(problemsOf({ message: "Unauthorized" })).toEqual([{ path: "", message: "Unauthorized" }]);
  });

  it("finds nothing in a body that is not an error document", () => {
    expect(problemsOf("<html>bad gateway</html>")).toEqual([]);
    expect(problemsOf(null)).toEqual([]);
  });
});

describe("plainWords", () => {
  it.each([
    ["Value error, min_reports (5) exceeds max_reports (2)", "value_error", "min_reports (5) exceeds max_reports (2)"],
    ["Input should be greater than or equal to 1", "greater_than_equal", "must be at least 1"],
    ["Input should be greater than 0", "greater_than", "must be more than 0"],
    ["Input should be a valid integer, got a number with a fractional part", "int_from_float", "must be a whole number"],
    ["List should have at most 4 items after validation, not 5", "too_long", "takes at most 4, not 5"],
    ["Extra inputs are not permitted", "extra_forbidden", "is not a field the API accepts"],
  ])("%s", (msg, type, expected) => {
    expect(plainWords({ msg, type })).toBe(expected);
  });
});

describe("errorFromResponse", () => {
  it("uses the API's own words when it gave some", () => {
    const error = errorFromResponse(409, { detail: "the job is running; the trained model is there once it completes" });
    expect(error.status).toBe(409);
    expect(error.message).toBe("the job is running; the trained model is there once it completes");
  });

  it("names each field in a summary of several problems", () => {
    const error = errorFromResponse(422, {
      detail: "1 problem with the request",
      errors: [{ loc: ["body", "attributes", 2, "max"], msg: "Input should be a valid number", type: "float_parsing" }],
    });
    expect(error.message).toBe("attribute 3, max: must be a number");
    expect(error.about("attributes.2")).toHaveLength(1);
    expect(error.about("attributes.1")).toHaveLength(0);
  });

  it("says when to try again where the API said", () => {
    const error = errorFromResponse(503, { detail: "a service the platform depends on is unavailable for now", errors: [] }, "5");
    expect(error.message).toBe("a service the platform depends on is unavailable for now; try again in 5 s.");
    expect(errorFromResponse(429, { detail: "too many", errors: [] }, "not-a-number").message).toBe("too many");
  });

  it("says what to do when the API said nothing", () => {
    expect(errorFromResponse(404, undefined).message).toMatch(/not yours/);
    expect(errorFromResponse(502, "").message).toMatch(/502/);
  });
});

describe("labelOf", () => {
  it.each([
    ["server_config.min_reports", "min reports"],
    ["attributes.0.name", "attribute 1, name"],
    ["architecture.layers.3.Conv2d.kernel_size", "architecture, layer 4, Conv2d, kernel size"],
    ["spec", "spec"],
  ])("%s", (path, label) => {
    expect(labelOf(path)).toBe(label);
  });
});
