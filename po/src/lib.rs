//! Berth's translations. Every user-facing string of the desktop app and of the CLI's human
//! output lives in `po/<locale>/berth.ftl` (Fluent), embedded here; `fl!` checks each message
//! id at compile time against the en-US file. The same files are plain Fluent, so a web client
//! can load them with Fluent's JavaScript runtime.

mod explain;

pub use explain::{explain, phase, size, Explanation};

use i18n_embed::fluent::{fluent_language_loader, FluentLanguageLoader};
use i18n_embed::{DesktopLanguageRequester, LanguageLoader};
use rust_embed::RustEmbed;
use std::sync::LazyLock;

pub use i18n_embed_fl;

// Embedded in debug builds too (`debug-embed`): binaries run where the source tree is not,
// such as the VM tests' guest.
#[derive(RustEmbed)]
#[folder = "."]
#[include = "*/berth.ftl"]
struct Localizations;

/// The loader `fl!` reads from; en-US until `init` picks the user's language.
pub static LOADER: LazyLock<FluentLanguageLoader> = LazyLock::new(|| {
    let loader: FluentLanguageLoader = fluent_language_loader!();
    loader
        .load_fallback_language(&Localizations)
        .expect("en-US translations are embedded");
    // No Unicode isolation marks around arguments: they show up as junk on terminals and in
    // test assertions, and Berth's arguments are never right-to-left text.
    loader.set_use_isolating(false);
    loader
});

/// Picks the languages from LC_ALL, LC_MESSAGES and LANG, falling back to en-US.
/// Returns the chosen language tags, best first.
pub fn init() -> Vec<String> {
    let requested = DesktopLanguageRequester::requested_languages();
    let chosen = i18n_embed::select(&*LOADER, &Localizations, &requested).unwrap_or_default();
    // Selecting reloads the bundles; they keep the loader's setting only if set again.
    LOADER.set_use_isolating(false);
    chosen.iter().map(|l| l.to_string()).collect()
}

/// The locales Berth ships, as directory names under `po/`.
pub fn available() -> Vec<String> {
    let mut locales: Vec<String> = Localizations::iter()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    locales.sort();
    locales.dedup();
    locales
}

/// `fl!("id")` or `fl!("id", name = value, ...)`: a translated message, its id checked at
/// compile time. Each crate using it has an `i18n.toml` pointing at `po/`.
#[macro_export]
macro_rules! fl {
    ($id:literal) => {
        $crate::i18n_embed_fl::fl!($crate::LOADER, $id)
    };
    ($id:literal, $($args:tt)*) => {
        $crate::i18n_embed_fl::fl!($crate::LOADER, $id, $($args)*)
    };
}
