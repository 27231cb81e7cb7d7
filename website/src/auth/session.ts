/**
 * Cognito sessions through Amplify's auth library.
 *
 * Tokens live in sessionStorage (gone with the tab), never in localStorage. Sign-in uses Cognito's
 * USER_PASSWORD_AUTH flow, as the Python SDK does: the emulator behind the local platform checks a
 * password but never an SRP proof, so this is the one flow the tests can prove end to end.
 */
import { Amplify } from "aws-amplify";
import {
  confirmSignIn,
  confirmSignUp,
  fetchAuthSession,
  resendSignUpCode,
  signIn,
  signOut,
  signUp,
} from "aws-amplify/auth";
import { cognitoUserPoolsTokenProvider } from "aws-amplify/auth/cognito";
import { sessionStorage } from "aws-amplify/utils";

import type { SiteConfig } from "../config";

export type Role = "scientist" | "app_developer";

/** Cognito groups the API checks, and the role each stands for. */
export const GROUP_OF_ROLE: Record<Role, string> = { scientist: "scientists", app_developer: "app-developers" };
export const ROLE_LABEL: Record<Role, string> = { scientist: "Data scientist", app_developer: "App developer" };

export interface Person {
  userId: string;
  email: string;
  role: Role | undefined;
}

export function configureAuth(config: SiteConfig): void {
  Amplify.configure({
    Auth: {
      Cognito: {
        userPoolId: config.userPoolId,
        userPoolClientId: config.userPoolClientId,
        ...(config.cognitoEndpoint ? { userPoolEndpoint: config.cognitoEndpoint } : {}),
        loginWith: { email: true },
        signUpVerificationMethod: "code",
      },
    },
  });
  cognitoUserPoolsTokenProvider.setKeyValueStorage(sessionStorage);
}

export function roleOfGroups(groups: unknown): Role | undefined {
  const names = Array.isArray(groups) ? groups : [];
  return (Object.keys(GROUP_OF_ROLE) as Role[]).find((role) => names.includes(GROUP_OF_ROLE[role]));
}

/** The signed-in person, from a fresh (refreshed if need be) ID token; undefined if none. */
export async function currentPerson(): Promise<Person | undefined> {
  const token = await validIdToken();
  if (!token) return undefined;
  const claims = token.payload;
  return {
    userId: String(claims.sub),
    email: String(claims.email ?? ""),
    role: roleOfGroups(claims["cognito:groups"]),
  };
}

export async function idToken(): Promise<string | undefined> {
  return (await validIdToken())?.toString();
}

async function validIdToken() {
  try {
    const token = (await fetchAuthSession()).tokens?.idToken;
    // Amplify hands back the stored token when a refresh fails; one that has expired is no session.
    if (!token || (token.payload.exp ?? 0) * 1000 <= Date.now()) return undefined;
    return token;
  } catch {
    return undefined;
  }
}

export type SignInOutcome = "signed-in" | "confirm-sign-up" | "totp";

export async function signInWithPassword(email: string, password: string): Promise<SignInOutcome> {
  const attempt = () => signIn({ username: email, password, options: { authFlowType: "USER_PASSWORD_AUTH" } });
  let result;
  try {
    result = await attempt();
  } catch (error) {
    if (nameOf(error) !== "UserAlreadyAuthenticatedException") throw humanize(error);
    // An expired session still counts as signed in to the library: end it, then sign in again.
    await signOut().catch(() => undefined);
    result = await attempt().catch((again: unknown) => Promise.reject(humanize(again)));
  }
  return outcomeOf(result.nextStep.signInStep);
}

function outcomeOf(step: string): SignInOutcome {
  if (step === "DONE") return "signed-in";
  if (step === "CONFIRM_SIGN_UP") return "confirm-sign-up";
  if (step === "CONFIRM_SIGN_IN_WITH_TOTP_CODE") return "totp";
  throw new Error(`Cognito asks for a step this site does not offer (${step}); sign in with the SDK instead.`);
}

export async function confirmTotp(code: string): Promise<void> {
  try {
    const result = await confirmSignIn({ challengeResponse: code });
    if (result.nextStep.signInStep !== "DONE") outcomeOf(result.nextStep.signInStep);
  } catch (error) {
    throw humanize(error);
  }
}

export async function register(email: string, password: string, role: Role): Promise<void> {
  try {
    await signUp({
      username: email,
      password,
      options: { userAttributes: { email, "custom:role": role } },
    });
  } catch (error) {
    throw humanize(error);
  }
}

export async function confirmRegistration(email: string, code: string): Promise<void> {
  try {
    await confirmSignUp({ username: email, confirmationCode: code.trim() });
  } catch (error) {
    throw humanize(error);
  }
}

export async function resendCode(email: string): Promise<void> {
  try {
    await resendSignUpCode({ username: email });
  } catch (error) {
    throw humanize(error);
  }
}

export async function endSession(): Promise<void> {
  // Revoking the refresh token can fail (offline, already revoked); the local session ends anyway.
  await signOut().catch(() => signOut({ global: false }).catch(() => undefined));
}

function nameOf(error: unknown): string {
  return typeof error === "object" && error !== null && "name" in error ? String(error.name) : "";
}

// Cognito's refusals, with what to do about each.
const ADVICE: Record<string, string> = {
  NotAuthorizedException: "The email or password is wrong. Check both and try again.",
  UserNotFoundException: "The email or password is wrong. Check both and try again.",
  UserNotConfirmedException: "Confirm your email address first, with the code we sent you.",
  UsernameExistsException: "An account with this email exists already: sign in instead.",
  InvalidPasswordException:
    "The password is too weak: use at least 12 characters with upper and lower case letters, a digit and a symbol.",
  CodeMismatchException: "That code is not the one we sent. Check the email and type it again.",
  ExpiredCodeException: "That code has expired: ask for a new one.",
  LimitExceededException: "Too many attempts: wait a few minutes, then try again.",
  TooManyRequestsException: "Too many attempts: wait a few minutes, then try again.",
  CodeDeliveryFailureException: "The code could not be emailed: check the address and ask for a new one.",
  UserLambdaValidationException:
    "Your account was confirmed, but setting it up failed. Sign in; if your pages are missing, contact the operator.",
  NetworkError: "The sign-in service cannot be reached: check your connection and try again.",
};

export function humanize(error: unknown): Error {
  const name = nameOf(error);
  const message = ADVICE[name];
  if (message) return Object.assign(new Error(message), { name });
  if (error instanceof Error && /fetch|network/i.test(error.message)) return new Error(ADVICE.NetworkError);
  return error instanceof Error ? error : new Error(String(error));
}
