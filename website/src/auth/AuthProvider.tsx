/**
 * Who is signed in, for every page; and the dialog that asks them to sign in again when their
 * session ends mid-task. The dialog opens over the page, which stays mounted underneath, so a
 * half-filled form keeps what was typed and its request is sent once they are back.
 */
import { useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";

import { Api } from "../api/client";
import { ApiError } from "../api/errors";
import type { SiteConfig } from "../config";
import { ReauthDialog } from "./ReauthDialog";
import { currentPerson, endSession, idToken, type Person, type SignInOutcome, signInWithPassword } from "./session";

interface AuthState {
  /** undefined while the stored session is read; null when no one is signed in. */
  person: Person | null | undefined;
  api: Api;
  config: SiteConfig;
  signIn(email: string, password: string): Promise<SignInOutcome>;
  /** Read the session again, after a sign-in finished outside signIn (a TOTP code). */
  reload(): Promise<void>;
  signOut(): Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export function AuthProvider({ config, children }: { config: SiteConfig; children: ReactNode }) {
  const queries = useQueryClient();
  const [person, setPerson] = useState<Person | null | undefined>(undefined);
  const [reauthOpen, setReauthOpen] = useState(false);
  const waiters = useRef<Waiter[]>([]);
  const personRef = useRef(person);
  personRef.current = person;

  const reload = useCallback(async () => {
    const next = (await currentPerson()) ?? null;
    if (next?.userId !== personRef.current?.userId) queries.clear(); // nobody sees another's cache
    setPerson(next);
  }, [queries]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const api = useMemo(
    () =>
      new Api(config.apiUrl, {
        idToken,
        reauthenticate: () =>
          new Promise<void>((resolve, reject) => {
            if (!personRef.current) {
              reject(new ApiError(401, "Sign in to continue."));
              return;
            }
            waiters.current.push({ resolve, reject });
            setReauthOpen(true);
          }),
      }),
    [config.apiUrl],
  );

  const settle = useCallback((outcome: "signed-in" | Error) => {
    const pending = waiters.current.splice(0);
    setReauthOpen(false);
    for (const waiter of pending) {
      if (outcome === "signed-in") waiter.resolve();
      else waiter.reject(outcome);
    }
  }, []);

  const signIn = useCallback(
    async (email: string, password: string) => {
      const outcome = await signInWithPassword(email, password);
      if (outcome === "signed-in") await reload();
      return outcome;
    },
    [reload],
  );

  const signOut = useCallback(async () => {
    settle(new ApiError(401, "You signed out."));
    await endSession();
    queries.clear();
    setPerson(null);
  }, [queries, settle]);

  const state = useMemo(
    () => ({ person, api, config, signIn, reload, signOut }),
    [person, api, config, signIn, reload, signOut],
  );
  return (
    <AuthContext.Provider value={state}>
      {children}
      {reauthOpen && person && (
        <ReauthDialog
          email={person.email}
          onSignIn={async (password) => {
            const outcome = await signInWithPassword(person.email, password);
            if (outcome !== "signed-in") throw new Error("Sign in from the sign-in page to finish this step.");
            settle("signed-in");
          }}
          onSignOut={() => void signOut()}
        />
      )}
    </AuthContext.Provider>
  );
}

export function useAuth(): AuthState {
  const state = useContext(AuthContext);
  if (!state) throw new Error("useAuth() outside <AuthProvider>");
  return state;
}

/** The API client, for components that only call it. */
export function useApi(): Api {
  return useAuth().api;
}
