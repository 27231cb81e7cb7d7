import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  build: {
    sourcemap: false,
    // The budget that matters is the gzipped total, which scripts/check-bundle.mjs enforces.
    chunkSizeWarningLimit: 1024,
  },
  server: { fs: { allow: [".."] } }, // the OpenAPI document lives in ../docs
});
