/** Small pieces every page uses: loading, empty and error states, statuses, copy, progress. */
import { type ReactNode, useState } from "react";
import { Link } from "react-router";

import { describe } from "../api/errors";
import { startDownload } from "../api/transfers";

export function Loading({ what }: { what: string }) {
  return (
    <p aria-busy="true" role="status">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/** An error in words, announced to screen readers, with a retry where one makes sense. */
export function ErrorNotice({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <div role="alert" className="notice error">
      <p>{describe(error)}</p>
      {retry && (
        <button type="button" className="secondary outline" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

const STATUS_TONE: Record<string, string> = {
  ready: "good",
  active: "good",
  completed: "good",
  running: "busy",
  open: "busy",
  queued: "busy",
  starting: "busy",
  // An FL node's health, as the orchestrator's supervisor last found it.
  healthy: "good",
  waiting: "busy",
  launching: "busy",
  booting: "busy",
  unreachable: "bad",
  down: "bad",
  registered: "busy",
  awaiting_upload: "busy",
  failed: "bad",
  revoked: "bad",
};

export function Status({ value }: { value: string }) {
  return <span className={`status ${STATUS_TONE[value] ?? ""}`}>{value.replaceAll("_", " ")}</span>;
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState<"yes" | "failed">();
  return (
    <button
      type="button"
      className="secondary"
      onClick={() =>
        navigator.clipboard.writeText(text).then(
          () => setCopied("yes"),
          () => setCopied("failed"),
        )
      }
    >
      {copied === "yes" ? "Copied" : copied === "failed" ? "Select and copy it by hand" : label}
    </button>
  );
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const percent = Math.round(Math.min(Math.max(value, 0), 1) * 100);
  return (
    <div className="progress">
      <progress value={percent} max={100} aria-label={label} />
      <span>{percent}%</span>
    </div>
  );
}

export function PageTitle({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <header className="page-title">
      <h1>{title}</h1>
      {children && <div className="actions">{children}</div>}
    </header>
  );
}

/** A wide table scrolls inside its own box on a phone, never the page. */
export function TableBox({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-box" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

export function ShortId({ id, to }: { id: string; to?: string }) {
  const text = <code title={id}>{id.slice(0, 8)}</code>;
  return to ? <Link to={to}>{text}</Link> : text;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function percent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(digits)}%`;
}

/** A number to three significant digits: 0.0875, not 0.08750000000000001. */
export function significant(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : String(Number(value.toPrecision(3)));
}

/** The API's reasons are clauses ("trained for 3 rounds"); shown alone, they read as sentences. */
export function sentence(text: string): string {
  const trimmed = text.trim();
  return trimmed ? `${trimmed[0]!.toUpperCase()}${trimmed.slice(1)}${/[.!?]$/.test(trimmed) ? "" : "."}` : "";
}

export function fixed(value: number | null | undefined, digits = 4): string {
  return value === null || value === undefined ? "—" : value.toFixed(digits);
}

export function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 ** 2) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 ** 2).toFixed(1)} MB`;
}

/** A button that fetches a presigned link and starts the download, showing why if it cannot. */
export function DownloadButton({ label, link }: { label: string; link: () => Promise<{ url: string }> }) {
  const [state, setState] = useState<{ busy?: boolean; error?: unknown }>({});
  return (
    <span className="download">
      <button
        type="button"
        className="secondary"
        aria-busy={state.busy}
        disabled={state.busy}
        onClick={() => {
          setState({ busy: true });
          link().then(
            ({ url }) => {
              startDownload(url);
              setState({});
            },
            (error: unknown) => setState({ error }),
          );
        }}
      >
        {label}
      </button>
      {state.error !== undefined && (
        <small role="alert" className="field-error">
          {describe(state.error)}
        </small>
      )}
    </span>
  );
}
