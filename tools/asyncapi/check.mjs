// Parses an AsyncAPI document with the official parser (@asyncapi/parser) and prints its
// diagnostics as one JSON array on stdout: [{"severity":"error","code":..,"path":..,"message":..}].
// Exit status: 0 when the document parsed with no error, 1 when it has errors, 2 on misuse.
// Used by tests/unit/test_asyncapi_parser.py; installed by scripts/setup.sh (npm ci).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node check.mjs path/to/asyncapi.yaml");
  process.exit(2);
}
readFileSync(file); // a missing file is an error of its own, not a parse diagnostic
const severities = ["error", "warning", "info", "hint"];
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, resolve(file)).parse();
const found = diagnostics.map((d) => ({
  severity: severities[d.severity] ?? String(d.severity),
  code: d.code,
  path: d.path.join("."),
  message: d.message,
}));
console.log(JSON.stringify(found, null, 1));
process.exit(document !== undefined && !found.some((d) => d.severity === "error") ? 0 : 1);
