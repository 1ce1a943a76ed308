//! The Fluent files stay complete and in use: every locale parses, has exactly en-US's
//! messages with the same arguments, and every en-US message is used by some client's code.

use fluent_syntax::ast::{Entry, Expression, InlineExpression, Pattern, PatternElement};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn po() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn variables(p: &Pattern<&str>, out: &mut BTreeSet<String>) {
    for el in &p.elements {
        if let PatternElement::Placeable { expression } = el {
            let inline = match expression {
                Expression::Inline(i) => i,
                Expression::Select { selector, .. } => selector,
            };
            if let InlineExpression::VariableReference { id } = inline {
                out.insert(id.name.to_string());
            }
        }
    }
}

/// Message id -> the variables it uses, from one .ftl file (which must parse cleanly).
fn messages(path: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let res = fluent_syntax::parser::parse(src.as_str())
        .unwrap_or_else(|(_, errs)| panic!("{} does not parse: {errs:?}", path.display()));
    res.body
        .iter()
        .filter_map(|e| match e {
            Entry::Message(m) => {
                let mut vars = BTreeSet::new();
                if let Some(v) = &m.value {
                    variables(v, &mut vars);
                }
                Some((m.id.name.to_string(), vars))
            }
            _ => None,
        })
        .collect()
}

/// Ids that code asks for: `fl!("id"` anywhere in the Rust clients, across line breaks.
fn used_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["cli/src", "gui/src", "po/src"]
        .iter()
        .map(|d| po().join("..").join(d))
        .collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for part in text.split("fl!(").skip(1) {
                let rest = part.trim_start();
                if let Some(rest) = rest.strip_prefix('"') {
                    if let Some(end) = rest.find('"') {
                        ids.insert(rest[..end].to_string());
                    }
                }
            }
        }
    }
    ids
}

/// Files under `dir` (relative to the repository) with extension `ext`.
fn sources(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![po().join("..").join(dir)];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
    out
}

/// The Cockpit page's string literals that look like message ids ("cockpit-pin",
/// "error-network"), and the ids it asks for directly with `_("id"`.
fn cockpit_ids() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut literals, mut asked) = (BTreeSet::new(), BTreeSet::new());
    let is_id = |s: &str| {
        s.contains('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let build_script = po().join("../cockpit-plugin/build.mjs");
    for p in sources("cockpit-plugin/src", "js")
        .into_iter()
        .chain(sources("cockpit-plugin/src", "jsx"))
        .chain([build_script])
    {
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, part) in text.split('"').enumerate() {
            if i % 2 == 1 && is_id(part) {
                literals.insert(part.to_string());
            }
        }
        for part in text.split("_(\"").skip(1) {
            if let Some(end) = part.find('"') {
                asked.insert(part[..end].to_string());
            }
        }
    }
    (literals, asked)
}

fn locales() -> Vec<String> {
    let mut l: Vec<String> = std::fs::read_dir(po())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.join("berth.ftl")
                .is_file()
                .then(|| p.file_name().unwrap().to_string_lossy().to_string())
        })
        .collect();
    l.sort();
    l
}

#[test]
fn en_us_german_and_french_are_shipped_and_embedded() {
    assert_eq!(locales(), ["de", "en-US", "fr"]);
    assert_eq!(berth_l10n::available(), locales());
}

#[test]
fn every_locale_has_exactly_the_messages_and_arguments_of_en_us() {
    let reference = messages(&po().join("en-US/berth.ftl"));
    let mut problems = vec![];
    for locale in locales() {
        let have = messages(&po().join(&locale).join("berth.ftl"));
        for (id, vars) in &reference {
            match have.get(id) {
                None => problems.push(format!("{locale}: missing {id}")),
                Some(v) if v != vars => {
                    problems.push(format!("{locale}: {id} uses {v:?}, en-US {vars:?}"))
                }
                _ => {}
            }
        }
        for id in have.keys().filter(|id| !reference.contains_key(*id)) {
            problems.push(format!("{locale}: {id} is not in en-US"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_message_is_used_by_the_code() {
    let reference = messages(&po().join("en-US/berth.ftl"));
    let mut used = used_ids();
    used.extend(cockpit_ids().0);
    let unused: Vec<_> = reference.keys().filter(|id| !used.contains(*id)).collect();
    assert!(unused.is_empty(), "messages no code uses: {unused:?}");
    // fl! already refuses unknown ids at compile time; this catches the scanner going blind.
    assert!(
        used.len() > 100,
        "found only {} ids in the code",
        used.len()
    );
}

/// JavaScript has no `fl!` to refuse an unknown id at build time: this does.
#[test]
fn every_message_the_cockpit_page_asks_for_exists() {
    let reference = messages(&po().join("en-US/berth.ftl"));
    let (_, asked) = cockpit_ids();
    let unknown: Vec<_> = asked
        .iter()
        .filter(|id| !reference.contains_key(*id))
        .collect();
    assert!(
        unknown.is_empty(),
        "unknown ids in cockpit-plugin/src: {unknown:?}"
    );
    assert!(
        asked.len() > 30,
        "found only {} ids in the page",
        asked.len()
    );
}

/// `$(name)` placeholders of a polkit message.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("$(")
        .skip(1)
        .filter_map(|p| p.split_once(')').map(|(n, _)| n.to_string()))
        .collect()
}

#[test]
fn polkit_actions_speak_german_and_french() {
    let policy = std::fs::read_to_string(po().join("../polkit/org.berth.berth1.policy")).unwrap();
    let mut problems = vec![];
    let mut actions = 0;
    for action in policy.split("<action id=\"").skip(1) {
        actions += 1;
        let id = action.split('"').next().unwrap_or("?");
        for tag in ["description", "message"] {
            let english = action
                .split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{tag}>")).next())
                .unwrap_or_default();
            for lang in ["de", "fr"] {
                let open = format!("<{tag} xml:lang=\"{lang}\">");
                match action
                    .split(&open)
                    .nth(1)
                    .and_then(|r| r.split(&format!("</{tag}>")).next())
                {
                    None => problems.push(format!("{id}: no {lang} {tag}")),
                    Some(t) if placeholders(t) != placeholders(english) => {
                        problems.push(format!("{id}: {lang} {tag} placeholders differ"))
                    }
                    Some(t) if t == english => {
                        problems.push(format!("{id}: {lang} {tag} untranslated"))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(actions >= 10, "found {actions} actions");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
