// Builds the Cockpit package into dist/: index.html, manifest.json, index.js, index.css and the
// fonts PatternFly's CSS refers to. Everything the page needs ships in dist/ (Cockpit's default
// Content-Security-Policy allows only files of the package itself, and nothing is fetched at run
// time); cockpit.js comes from Cockpit's own base1 package.
//
//   node build.mjs            (npm run build)
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
    entryPoints: [join(here, "src/index.jsx")],
    bundle: true,
    outfile: join(out, "index.js"),
    format: "iife",
    target: ["es2020"],
    minify: true,
    sourcemap: false,
    legalComments: "linked",
    jsx: "automatic",
    loader: { ".woff2": "file", ".woff": "file", ".ttf": "file", ".svg": "file", ".png": "file", ".jpg": "file" },
    assetNames: "fonts/[name]-[hash]",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
});

for (const f of ["index.html", "manifest.json"]) cpSync(join(here, "src", f), join(out, f));
console.log(`build-cockpit: page built in ${out}`);
