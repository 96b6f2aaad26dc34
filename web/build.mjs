// Bundle the two front ends, each with NiiVue, into ONE minified IIFE script:
//   src/view3d.js -> ../src/cryoplan/report/static/view3d.js  (inlined in report.html)
//   src/app.js    -> ../src/cryoplan/server/static/app.js     (`cryoplan serve`'s page)
// and copy app.html / app.css beside the latter (as index.html / app.css).
// Run: npm run build
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

const here = dirname(fileURLToPath(import.meta.url));
const reportStatic = join(here, "..", "src", "cryoplan", "report", "static");
const serverStatic = join(here, "..", "src", "cryoplan", "server", "static");

// NiiVue's Zarr support (remote OME-Zarr over HTTP, which a file:// report
// cannot use anyway) pulls in zarrita, whose Blosc/LZ4/Zstd codecs are
// WebAssembly blobs of ~1.4 MB together. They are only reached through a
// lazy import() when a Zarr chunk with that codec is decoded, so we swap
// them for a stub that fails loudly if that ever happens.
const stubZarrWasmCodecs = {
  name: "stub-zarr-wasm-codecs",
  setup(b) {
    b.onResolve({ filter: /^numcodecs\/(blosc|lz4|zstd)$/ }, (args) => ({
      path: args.path,
      namespace: "codec-stub",
    }));
    b.onLoad({ filter: /.*/, namespace: "codec-stub" }, (args) => ({
      contents: `export default { fromConfig() { throw new Error(${JSON.stringify(
        args.path + " is not bundled in the cryoplan viewer",
      )}); } };`,
      loader: "js",
    }));
  },
};

// --- licence banner ---------------------------------------------------------
// The reports and the application redistribute this code, so they must carry the licences of
// every bundled package (BSD-2-Clause / MIT / ISC all require the notice).
// NiiVue's npm package ships no LICENSE file; its text is the project's
// BSD 2-Clause licence, reproduced here.
const NIIVUE_LICENSE = `BSD 2-Clause License

Copyright (c) 2021, Niivue
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.`;

// One bundle: esbuild, the run-time checks, the licence banner. `inline`: the
// script goes inside a <script> tag of a file:// page (the report), which adds
// the checks that only matter there.
async function bundle(entry, outfile, title, inline) {
  const result = await build({
    entryPoints: [join(here, "src", entry)],
    outfile,
    write: false, // we prepend the licence banner ourselves, below
    bundle: true,
    format: "iife", // classic script: works inline and from file://, no modules
    platform: "browser",
    target: ["es2020"],
    minify: true,
    charset: "ascii", // escape non-ASCII, so the page's encoding cannot matter
    legalComments: "none", // replaced by the complete banner below
    splitting: false, // one file: no chunks to load later
    sourcemap: false,
    logLevel: "warning",
    metafile: true,
    plugins: [stubZarrWasmCodecs],
  });
  const code = result.outputFiles[0].text;

  // --- run-time self-containment checks ------------------------------------
  // Neither front end may load anything else at run time (the report is a
  // file:// page, the application works offline, and no chunk files are
  // written): fail the build if esbuild left a dynamic import behind.
  if (/\bimport\s*\(/.test(code)) {
    throw new Error("bundle contains a dynamic import(): it would load a chunk at run time");
  }
  const inputs = Object.keys(Object.values(result.metafile.outputs)[0].inputs);
  if (inputs.some((p) => /numcodecs\/dist\/(blosc|lz4|zstd)/.test(p))) {
    throw new Error("the Zarr WebAssembly codecs were bundled: the stub did not apply");
  }

  // --- licence banner -------------------------------------------------------
  const pkgDirs = [
    ...new Set(
      inputs
        .map((p) => p.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//))
        .filter(Boolean)
        .map((m) => m[1]),
    ),
  ].sort();
  const sections = pkgDirs.map((name) => {
    const dir = join(here, "node_modules", name);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    const text = file ? readFileSync(join(dir, file), "utf8").trim() : name === "@niivue/niivue" ? NIIVUE_LICENSE : "";
    if (!text) throw new Error(`${name}: no licence text found to put in the bundle`);
    return `${pkg.name}@${pkg.version} (${pkg.license})\n\n${text}`;
  });
  const banner =
    `/*! ${title} (web/src/${entry}), bundled with esbuild.\n` +
    " * It includes the following packages, under these licences:\n\n" +
    sections.join("\n\n----------------------------------------\n\n").replaceAll("*/", "* /") +
    "\n*/\n";

  const text = banner + code;
  // An inline <script> ends at the first "</script", and "<!--" can switch
  // the HTML parser into an escaped state: the file must contain neither.
  if (inline && /<\/script|<!--/i.test(text)) {
    throw new Error('bundle contains "</script" or "<!--": it cannot be inlined as is');
  }
  if (/[^\x00-\x7f]/.test(text)) {
    throw new Error("bundle is not pure ASCII");
  }
  mkdirSync(dirname(outfile), { recursive: true });
  writeFileSync(outfile, text);
  console.log(`${outfile}: ${text.length} bytes (${pkgDirs.length} bundled packages: ${pkgDirs.join(", ")})`);
}

await bundle("view3d.js", join(reportStatic, "view3d.js"), "cryoplan 3-D viewer", true);
// The application is served as files by `cryoplan serve`, not inlined; it must
// still load nothing from elsewhere (it works offline), which the checks
// against dynamic import() and the Zarr codecs cover.
await bundle("app.js", join(serverStatic, "app.js"), "cryoplan browser application", false);
copyFileSync(join(here, "app.html"), join(serverStatic, "index.html"));
copyFileSync(join(here, "app.css"), join(serverStatic, "app.css"));
