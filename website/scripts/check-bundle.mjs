// The production bundle's budget: every JavaScript file the build wrote, gzipped, at most 300 KB.
// Run after `vite build`; a bundle over budget fails the build.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET_BYTES = 300 * 1024;
const assets = new URL("../dist/assets/", import.meta.url).pathname;

const files = readdirSync(assets).filter((name) => name.endsWith(".js"));
if (files.length === 0) {
  console.error(`no JavaScript in ${assets}: run vite build first`);
  process.exit(1);
}
let total = 0;
for (const name of files) {
  const size = gzipSync(readFileSync(join(assets, name)), { level: 9 }).length;
  total += size;
  console.log(`${(size / 1024).toFixed(1).padStart(7)} KB gzipped  ${name}`);
}
const verdict = total <= BUDGET_BYTES ? "within" : "OVER";
console.log(`${(total / 1024).toFixed(1).padStart(7)} KB gzipped in all: ${verdict} the budget of ${BUDGET_BYTES / 1024} KB`);
process.exit(total <= BUDGET_BYTES ? 0 : 1);
