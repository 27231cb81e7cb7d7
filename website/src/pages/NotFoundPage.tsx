import { Link } from "react-router";

export function NotFoundPage() {
  return (
    <div className="notice">
      <h1>No such page</h1>
      <p>
        The address may be mistyped, or the page has moved. <Link to="/">Go to the start</Link>.
      </p>
    </div>
  );
}
