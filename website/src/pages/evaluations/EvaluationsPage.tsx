import { Link } from "react-router";

import { useEvaluations } from "../../api/queries";
import { ForRole } from "../../auth/guards";
import { Empty, ErrorNotice, Loading, PageTitle, percent, ShortId, Status, TableBox, when } from "../../components/common";

export function EvaluationsPage() {
  return (
    <ForRole role="scientist">
      <Evaluations />
    </ForRole>
  );
}

function Evaluations() {
  const evaluations = useEvaluations();
  return (
    <>
      <PageTitle title="Robustness evaluations">
        <Link role="button" to="/evaluations/new">
          Evaluate a model
        </Link>
      </PageTitle>
      {evaluations.isPending ? (
        <Loading what="your evaluations" />
      ) : evaluations.isError ? (
        <ErrorNotice error={evaluations.error} retry={() => void evaluations.refetch()} />
      ) : evaluations.data.length === 0 ? (
        <Empty>
          <p>
            No evaluations yet. <Link to="/evaluations/new">Evaluate one of your models</Link> to see how much accuracy
            survives adversarial perturbations.
          </p>
        </Empty>
      ) : (
        <TableBox label="Your evaluations">
          <thead>
            <tr>
              <th scope="col">Evaluation</th>
              <th scope="col">Status</th>
              <th scope="col">Clean accuracy</th>
              <th scope="col">Robust accuracy</th>
              <th scope="col">Queued</th>
            </tr>
          </thead>
          <tbody>
            {evaluations.data.map((evaluation) => (
              <tr key={evaluation.evaluation_id}>
                <td>
                  <ShortId id={evaluation.evaluation_id} to={`/evaluations/${evaluation.evaluation_id}`} />
                </td>
                <td>
                  <Status value={evaluation.status} />
                  {evaluation.status === "running" && ` ${Math.round(evaluation.progress * 100)}%`}
                </td>
                <td>{percent(evaluation.summary?.clean_accuracy)}</td>
                <td>
                  <RobustAccuracy summary={evaluation.summary} />
                </td>
                <td>{when(evaluation.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      )}
    </>
  );
}

/** The headline with its interval, marked when a gradient-masking check failed. */
function RobustAccuracy({ summary }: { summary: Record<string, number> | null }) {
  if (!summary) return <>—</>;
  const low = summary.robust_accuracy_ci95_low;
  const high = summary.robust_accuracy_ci95_high;
  return (
    <>
      {percent(summary.robust_accuracy)}
      {low !== undefined && high !== undefined && (
        <small className="muted">
          {" "}
          ({percent(low)} to {percent(high)})
        </small>
      )}
      {summary.headline_reliable === 0 && (
        <>
          {" "}
          <span className="status bad">not reliable</span>
        </>
      )}
    </>
  );
}
