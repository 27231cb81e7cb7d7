import { NavLink, Outlet, useNavigate } from "react-router";

import { useAuth } from "../auth/AuthProvider";
import { type Role, ROLE_LABEL } from "../auth/session";

const NAVIGATION: Record<Role, { to: string; label: string }[]> = {
  app_developer: [
    { to: "/datasets", label: "Your apps" },
    { to: "/datasets/new", label: "Register an app" },
  ],
  scientist: [
    { to: "/datasets", label: "Datasets" },
    { to: "/models", label: "Models" },
    { to: "/jobs", label: "Training" },
    { to: "/evaluations", label: "Evaluations" },
  ],
};

export function Layout() {
  const { person, signOut } = useAuth();
  const navigate = useNavigate();
  const links = person?.role ? NAVIGATION[person.role] : [];
  return (
    <>
      <a className="skip-link" href="#content">
        Skip to content
      </a>
      <header className="site-header">
        <nav aria-label="Main" className="container">
          <ul>
            <li>
              <NavLink to="/" className="brand" end>
                Cohort
              </NavLink>
            </li>
          </ul>
          <ul className="links">
            {links.map((link) => (
              <li key={link.to}>
                <NavLink to={link.to} end>
                  {link.label}
                </NavLink>
              </li>
            ))}
            {person ? (
              <li>
                <details className="dropdown">
                  <summary>{person.email}</summary>
                  <ul dir="rtl">
                    <li>
                      <span className="muted">{person.role ? ROLE_LABEL[person.role] : "no role yet"}</span>
                    </li>
                    <li>
                      <button
                        type="button"
                        className="secondary"
                        onClick={() => void signOut().then(() => navigate("/sign-in"))}
                      >
                        Sign out
                      </button>
                    </li>
                  </ul>
                </details>
              </li>
            ) : (
              <>
                <li>
                  <NavLink to="/sign-in">Sign in</NavLink>
                </li>
                <li>
                  <NavLink to="/sign-up">Sign up</NavLink>
                </li>
              </>
            )}
          </ul>
        </nav>
      </header>
      <main id="content" className="container" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
