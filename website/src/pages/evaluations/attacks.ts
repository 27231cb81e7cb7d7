import { fieldOf } from "../../forms/schema";

/** What each attack the API accepts does, in a line, for the evaluation form. */
const DESCRIPTIONS: Record<string, { label: string; norm: "linf" | "l2"; summary: string }> = {
  fgsm: { label: "FGSM", norm: "linf", summary: "one signed gradient step: fast, and a check on the others" },
  pgd_linf: { label: "PGD", norm: "linf", summary: "projected gradient descent, the standard L∞ attack" },
  pgd_l2: { label: "PGD L2", norm: "l2", summary: "projected gradient descent inside an L2 ball" },
  apgd_ce: { label: "APGD-CE", norm: "linf", summary: "auto-PGD with a step size that adapts itself" },
};

/** The attacks in the API's schema, in its order; one the site has no words for still shows, by name. */
export const ATTACKS = (fieldOf("EvaluationSpec", "attacks").choices ?? []).map((name) => ({
  name,
  ...(DESCRIPTIONS[name] ?? { label: name, norm: undefined, summary: "" }),
}));
