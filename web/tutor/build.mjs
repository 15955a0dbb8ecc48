// Builds the tutor page into api/static/tutor (the API serves it at /tutor).
// Asset names carry a content hash (cached for good); index.html names them.
import { readFile, rm, mkdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.TUTOR_OUT_DIR ?? join(here, "..", "..", "api", "static", "tutor"));
const assets = join(out, "assets");
const started = Date.now();

await rm(out, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.ts", style: "src/styles.css" },
  outdir: assets,
  bundle: true,
  splitting: true, // livekit-client becomes its own chunk, loaded only in LiveKit mode
  format: "esm",
  target: ["es2020"],
  minify: true,
  sourcemap: "linked",
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const outputs = result.metafile.outputs;
function entry(source) {
  const found = Object.entries(outputs).find(([, o]) => o.entryPoint === source);
  if (!found) throw new Error(`no output for ${source}`);
  return "/tutor/assets/" + relative(assets, resolve(here, found[0]));
}

const html = (await readFile(join(here, "src", "index.html"), "utf8"))
  .replace("%APP_JS%", entry("src/main.ts"))
  .replace("%APP_CSS%", entry("src/styles.css"));
await writeFile(join(out, "index.html"), html);
// Build output, never committed (this keeps git quiet even without a root .gitignore line).
await writeFile(join(out, ".gitignore"), "*\n");

let total = 0;
const sizes = Object.entries(outputs)
  .filter(([name]) => !name.endsWith(".map"))
  .map(([name, o]) => {
    total += o.bytes;
    return `  ${relative(out, resolve(here, name))} ${(o.bytes / 1024).toFixed(1)} KiB`;
  });
console.log(`tutor page built in ${Date.now() - started} ms → ${out}`);
console.log(sizes.join("\n"));
console.log(`  total ${(total / 1024).toFixed(1)} KiB (without source maps)`);
