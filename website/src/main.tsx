import "@picocss/pico/css/pico.min.css";
import "./styles.css";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { ApiError } from "./api/errors";
import { App } from "./App";
import { AuthProvider } from "./auth/AuthProvider";
import { configureAuth } from "./auth/session";
import { ConfigError, loadConfig } from "./config";

const root = createRoot(document.getElementById("root")!);

const queries = new QueryClient({
  defaultOptions: {
    queries: {
      // Retry what may pass (the network, a busy service), never a refusal.
      retry: (failures, error) => failures < 2 && (!(error instanceof ApiError) || error.status === 0 || error.status >= 500),
      refetchOnWindowFocus: true,
    },
  },
});

loadConfig().then(
  (config) => {
    configureAuth(config);
    root.render(
      <StrictMode>
        <QueryClientProvider client={queries}>
          <AuthProvider config={config}>
            <App />
          </AuthProvider>
        </QueryClientProvider>
      </StrictMode>,
    );
  },
  (error: unknown) => {
    root.render(
      <main className="container">
        <h1>Cohort cannot start</h1>
        <p role="alert">{error instanceof ConfigError ? error.message : String(error)}</p>
      </main>,
    );
  },
);
