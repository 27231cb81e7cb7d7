import { type FormEvent, useEffect, useRef, useState } from "react";

import { describe } from "../api/errors";

interface Props {
  email: string;
  onSignIn(password: string): Promise<void>;
  onSignOut(): void;
}

/** A modal over the current page: the page underneath keeps its state while the person signs in. */
export function ReauthDialog({ email, onSignIn, onSignOut }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
    return () => element?.close();
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await onSignIn(password);
    } catch (failure) {
      setError(describe(failure));
      setBusy(false);
    }
  }

  return (
    <dialog ref={dialog} aria-labelledby="reauth-title" onCancel={(event) => event.preventDefault()}>
      <article>
        <header>
          <h2 id="reauth-title">Your session has ended</h2>
        </header>
        <p>Sign in again to carry on. What you were doing is kept, and is sent once you are back.</p>
        <form onSubmit={submit}>
          <label>
            Email
            <input type="email" value={email} readOnly autoComplete="username" />
          </label>
          <label>
            Password
            <input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              autoFocus
              value={password}
              onChange={(event) => setPassword(event.target.value)}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? "reauth-error" : undefined}
            />
          </label>
          {error && (
            <p id="reauth-error" role="alert" className="error">
              {error}
            </p>
          )}
          <footer className="actions">
            <button type="button" className="secondary" onClick={onSignOut}>
              Sign out instead
            </button>
            <button type="submit" aria-busy={busy} disabled={busy}>
              Sign in
            </button>
          </footer>
        </form>
      </article>
    </dialog>
  );
}
