import type { ReactNode } from "react";
import { Navigate, Outlet, useLocation } from "react-router";

import { Loading } from "../components/common";
import { useAuth } from "./AuthProvider";
import { type Role, ROLE_LABEL } from "./session";

/** Pages behind sign-in: a visitor is sent to sign in, and comes back here afterwards. */
export function RequireSignIn() {
  const { person } = useAuth();
  const location = useLocation();
  if (person === undefined) return <Loading what="your session" />;
  if (person === null) {
    return <Navigate to="/sign-in" replace state={{ from: `${location.pathname}${location.search}` }} />;
  }
  return <Outlet />;
}

/** Content for one role; the other role is told whose page this is instead of seeing errors. */
export function ForRole({ role, children }: { role: Role; children: ReactNode }) {
  const { person } = useAuth();
  if (person?.role !== role) {
    return (
      <div className="notice">
        <h1>This page is for {ROLE_LABEL[role].toLowerCase()}s</h1>
        <p>
          You are signed in as {person?.role ? `an ${ROLE_LABEL[person.role].toLowerCase()}` : "someone with no role yet"}.
          Each account has one role, chosen at sign-up; sign up again with another email to use the other.
        </p>
      </div>
    );
  }
  return <>{children}</>;
}
