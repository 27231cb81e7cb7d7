import { type FormEvent, useState } from "react";
import { Link, useNavigate } from "react-router";

import { describe } from "../../api/errors";
import { register, type Role } from "../../auth/session";
import { Field } from "../../forms/fields";

const PASSWORD_RULE = "At least 12 characters, with upper and lower case letters, a digit and a symbol.";

/** Checks the pool's password policy before Cognito does, so the person sees all of it at once. */
export function passwordProblem(password: string): string | undefined {
  const missing = [
    password.length < 12 && "12 characters",
    !/[a-z]/.test(password) && "a lower-case letter",
    !/[A-Z]/.test(password) && "an upper-case letter",
    !/\d/.test(password) && "a digit",
    !/[^A-Za-z0-9]/.test(password) && "a symbol",
  ].filter(Boolean);
  return missing.length ? `needs ${missing.join(", ")}` : undefined;
}

export function SignUpPage() {
  const navigate = useNavigate();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>();
  const [errors, setErrors] = useState<{ email?: string; password?: string; role?: string; form?: string }>({});
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = {
      email: /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.trim()) ? undefined : "enter an email address you can read",
      password: passwordProblem(password),
      role: role ? undefined : "choose how you will use Cohort",
    };
    setErrors(found);
    if (found.email || found.password || !role) return;
    setBusy(true);
    try {
      await register(email.trim(), password, role);
      navigate(`/confirm?email=${encodeURIComponent(email.trim())}`);
    } catch (failure) {
      setErrors({ form: describe(failure) });
      setBusy(false);
    }
  }

  return (
    <article className="narrow">
      <h1>Create your account</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Email" error={errors.email} hint="We send a confirmation code here.">
          {(props) => (
            <input
              {...props}
              type="email"
              name="email"
              autoComplete="email"
              required
              value={email}
              onChange={(event) => setEmail(event.target.value)}
            />
          )}
        </Field>
        <Field label="Password" hint={PASSWORD_RULE} error={errors.password}>
          {(props) => (
            <input
              {...props}
              type="password"
              name="password"
              autoComplete="new-password"
              required
              value={password}
              onChange={(event) => setPassword(event.target.value)}
            />
          )}
        </Field>
        <fieldset aria-describedby={errors.role ? "role-error" : undefined}>
          <legend>I will use Cohort as</legend>
          <label>
            <input type="radio" name="role" value="scientist" checked={role === "scientist"} onChange={() => setRole("scientist")} />
            a data scientist: I train and evaluate models
          </label>
          <label>
            <input
              type="radio"
              name="role"
              value="app_developer"
              checked={role === "app_developer"}
              onChange={() => setRole("app_developer")}
            />
            an app developer: my app's devices hold the data
          </label>
          {errors.role && (
            <small id="role-error" className="field-error">
              {errors.role}
            </small>
          )}
        </fieldset>
        {errors.form && (
          <p role="alert" className="error">
            {errors.form}
          </p>
        )}
        <button type="submit" aria-busy={busy} disabled={busy}>
          Sign up
        </button>
      </form>
      <p>
        Have an account? <Link to="/sign-in">Sign in</Link>.
      </p>
    </article>
  );
}
