// Builds the Cockpit page into dist/: one bundle (React, PatternFly, the Fluent files from
// ../po) plus index.html and manifest.json. `node build.mjs` (npm run build).
import * as esbuild from "esbuild";
import { FluentBundle, FluentResource } from "@fluent/bundle";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist);

await esbuild.build({
    entryPoints: [path.join(here, "src/index.jsx")],
    outdir: dist,
    bundle: true,
    minify: true,
    sourcemap: false,
    target: ["es2020"],
    jsx: "automatic",
    loader: {
        ".ftl": "text",
        ".woff2": "file",
        ".woff": "file",
        ".ttf": "file",
        ".svg": "file",
        ".png": "file",
        ".jpg": "file",
    },
    assetNames: "assets/[name]-[hash]",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
});
for (const f of ["index.html", "manifest.json"]) {
    fs.copyFileSync(path.join(here, "src", f), path.join(dist, f));
}

// Cockpit's own translation files, one per locale in po/: po.js sets cockpit.language to the
// session's language (the page's Fluent strings follow it), and the menu label is translated.
function message(locale, id) {
    const bundle = new FluentBundle(locale, { useIsolating: false });
    bundle.addResource(new FluentResource(fs.readFileSync(path.join(here, "../po", locale, "berth.ftl"), "utf8")));
    return bundle.formatPattern(bundle.getMessage(id).value);
}
const manifest = JSON.parse(fs.readFileSync(path.join(here, "src/manifest.json"), "utf8"));
const label = manifest.menu.index.label;
if (label !== message("en-US", "cockpit-menu-label")) {
    throw new Error(`manifest.json's label "${label}" is not cockpit-menu-label in po/en-US`);
}
for (const locale of fs.readdirSync(path.join(here, "../po"))) {
    if (locale === "en-US" || !fs.existsSync(path.join(here, "../po", locale, "berth.ftl"))) continue;
    const po = {
        "": { "plural-forms": "(n) => n != 1", language: locale, "language-direction": "ltr" },
        [label]: [null, message(locale, "cockpit-menu-label")],
    };
    const text = `cockpit.locale(${JSON.stringify(po, null, 1)});\n`.replace('"(n) => n != 1"', "(n) => n != 1");
    fs.writeFileSync(path.join(dist, `po.${locale}.js`), text);
}
console.log(`built ${path.relative(process.cwd(), dist) || "."}`);
