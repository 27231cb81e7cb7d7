import { type FormEvent, useState } from "react";
import { Link, useLocation, useNavigate } from "react-router";

import { describe } from "../../api/errors";
import { useAuth } from "../../auth/AuthProvider";
import { confirmTotp } from "../../auth/session";
import { Field } from "../../forms/fields";

export function SignInPage() {
  const { signIn, reload } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  const from = (location.state as { from?: string } | null)?.from ?? "/";
  const [email, setEmail] = useState(new URLSearchParams(location.search).get("email") ?? "");
  const [password, setPassword] = useState("");
  const [totp, setTotp] = useState<string>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (totp !== undefined) {
        await confirmTotp(totp);
        await reload();
        navigate(from, { replace: true });
        return;
      }
      const outcome = await signIn(email.trim(), password);
      if (outcome === "signed-in") navigate(from, { replace: true });
      else if (outcome === "confirm-sign-up") navigate(`/confirm?email=${encodeURIComponent(email.trim())}`);
      else setTotp("");
    } catch (failure) {
      setError(describe(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <article className="narrow">
      <h1>Sign in</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Email">
          {(props) => (
            <input
              {...props}
              type="email"
              name="email"
              autoComplete="username"
              required
              value={email}
              onChange={(event) => setEmail(event.target.value)}
            />
          )}
        </Field>
        <Field label="Password">
          {(props) => (
            <input
              {...props}
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(event) => setPassword(event.target.value)}
            />
          )}
        </Field>
        {totp !== undefined && (
          <Field label="Code from your authenticator app" hint="Six digits; it changes every 30 seconds.">
            {(props) => (
              <input
                {...props}
                name="totp"
                inputMode="numeric"
                autoComplete="one-time-code"
                value={totp}
                onChange={(event) => setTotp(event.target.value)}
              />
            )}
          </Field>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" aria-busy={busy} disabled={busy}>
          Sign in
        </button>
      </form>
      <p>
        New to Cohort? <Link to="/sign-up">Create an account</Link>.
      </p>
    </article>
  );
}
