/* global cockpit */
// Berth's words in the user's language: the same Fluent files (po/<locale>/berth.ftl) the
// desktop app and the CLI use, bundled into the page at build time.
import { FluentBundle, FluentResource } from "@fluent/bundle";
import { negotiateLanguages } from "@fluent/langneg";
import enUS from "../../po/en-US/berth.ftl";
import de from "../../po/de/berth.ftl";
import fr from "../../po/fr/berth.ftl";

const SOURCES = { "en-US": enUS, de, fr };
const FALLBACK = "en-US";

function bundle(locale) {
    // No bidi isolation marks: they would show up in tests and copied text.
    const b = new FluentBundle(locale, { useIsolating: false });
    const errors = b.addResource(new FluentResource(SOURCES[locale]));
    errors.forEach(e => console.warn("berth:", locale, e.message));
    return b;
}

/// The language Cockpit chose for the session ("de", "pt-br"): po.js, loaded before this
/// script, sets it (the build writes po.LANG.js for every locale in po/). Without Cockpit,
/// the browser's.
function wanted() {
    if (typeof cockpit !== "undefined" && cockpit.language) return [cockpit.language];
    return (navigator.languages || [navigator.language]).filter(Boolean);
}

export const locale = negotiateLanguages(wanted(), Object.keys(SOURCES), {
    defaultLocale: FALLBACK,
    strategy: "lookup",
})[0];

const bundles = [bundle(locale), ...(locale === FALLBACK ? [] : [bundle(FALLBACK)])];

/// The message `id` with `args` filled in; the English one when a translation lacks it.
/// The desktop app's button labels carry a mnemonic ("_Download"): dropped. Those labels
/// take no arguments, and text with arguments (image names) is never touched.
export function _(id, args) {
    for (const b of bundles) {
        const message = b.getMessage(id);
        if (message && message.value) {
            const text = b.formatPattern(message.value, args);
            return args ? text : text.replace(/_(?=\S)/, "");
        }
    }
    console.warn("berth: no message", id);
    return id;
}
