import { type FormEvent, useState } from "react";
import { Link, useLocation, useNavigate } from "react-router";

import { describe } from "../../api/errors";
import { confirmRegistration, resendCode } from "../../auth/session";
import { Field } from "../../forms/fields";

export function ConfirmPage() {
  const navigate = useNavigate();
  const location = useLocation();
  const [email, setEmail] = useState(new URLSearchParams(location.search).get("email") ?? "");
  const [code, setCode] = useState("");
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setMessage(undefined);
    try {
      await confirmRegistration(email.trim(), code);
      navigate(`/sign-in?email=${encodeURIComponent(email.trim())}`, {
        state: { confirmed: true },
      });
    } catch (failure) {
      setMessage({ text: describe(failure), error: true });
      setBusy(false);
    }
  }

  async function resend() {
    setMessage(undefined);
    try {
      await resendCode(email.trim());
      setMessage({ text: `A new code is on its way to ${email.trim()}.`, error: false });
    } catch (failure) {
      setMessage({ text: describe(failure), error: true });
    }
  }

  return (
    <article className="narrow">
      <h1>Confirm your email</h1>
      <p>We emailed a six-digit code to the address you signed up with. Type it here to finish.</p>
      <form onSubmit={submit} noValidate>
        <Field label="Email">
          {(props) => (
            <input {...props} type="email" name="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
          )}
        </Field>
        <Field label="Confirmation code">
          {(props) => (
            <input
              {...props}
              name="code"
              inputMode="numeric"
              autoComplete="one-time-code"
              required
              value={code}
              onChange={(event) => setCode(event.target.value)}
            />
          )}
        </Field>
        {message && (
          <p role={message.error ? "alert" : "status"} className={message.error ? "error" : "muted"}>
            {message.text}
          </p>
        )}
        <div className="actions">
          <button type="button" className="secondary" onClick={() => void resend()} disabled={!email.trim()}>
            Send a new code
          </button>
          <button type="submit" aria-busy={busy} disabled={busy}>
            Confirm
          </button>
        </div>
      </form>
      <p>
        Confirmed already? <Link to="/sign-in">Sign in</Link>.
      </p>
    </article>
  );
}
