//! containers-registries.d(5): where a registry's images keep their signatures. Berth reads
//! the `lookaside` (formerly `sigstore`) location of GPG signatures and
//! `use-sigstore-attachments`, for the most specific `docker` namespace or `default-docker`.

use std::collections::BTreeMap;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// One configuration section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub lookaside: Option<String>,
    pub use_sigstore_attachments: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct RegistriesD {
    default_docker: Option<Section>,
    docker: BTreeMap<String, Section>,
}

impl RegistriesD {
    /// Every `*.yaml` file of `dir`; a missing directory is an empty configuration.
    pub fn load(dir: &Path) -> Result<RegistriesD, String> {
        let mut out = RegistriesD::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            out.add(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        Ok(out)
    }

    /// Adds one file's text; a section defined twice (in one or two files) is an error.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(());
        };
        let top = match &doc {
            Yaml::Hash(h) => h,
            Yaml::Null => return Ok(()),
            _ => return Err("the file is not a YAML mapping".into()),
        };
        for (key, value) in top {
            match key.as_str() {
                Some("default-docker") => {
                    if self.default_docker.is_some() {
                        return Err("default-docker is defined more than once".into());
                    }
                    self.default_docker = Some(section(value)?);
                }
                Some("docker") => {
                    let Yaml::Hash(namespaces) = value else {
                        return Err("docker must be a mapping of namespaces".into());
                    };
                    for (ns, value) in namespaces {
                        let ns = ns.as_str().ok_or("a docker namespace must be a string")?;
                        if self
                            .docker
                            .insert(ns.to_string(), section(value)?)
                            .is_some()
                        {
                            return Err(format!(
                                "docker namespace {ns:?} is defined more than once"
                            ));
                        }
                    }
                }
                // Other tools' keys are theirs.
                _ => {}
            }
        }
        Ok(())
    }

    /// The lookaside base for `scopes` (most specific first, as the policy's docker scopes).
    pub fn lookaside(&self, scopes: &[String]) -> Option<&str> {
        self.find(scopes, |s| s.lookaside.as_deref())
    }

    /// Whether cosign's signatures attached in the registry are read.
    pub fn use_sigstore_attachments(&self, scopes: &[String]) -> bool {
        self.find(scopes, |s| s.use_sigstore_attachments)
            .unwrap_or(false)
    }

    fn find<'a, T>(
        &'a self,
        scopes: &[String],
        get: impl Fn(&'a Section) -> Option<T>,
    ) -> Option<T> {
        scopes
            .iter()
            .filter_map(|s| self.docker.get(s))
            .chain(self.default_docker.as_ref())
            .find_map(get)
    }
}

fn section(value: &Yaml) -> Result<Section, String> {
    let mut s = Section::default();
    let Yaml::Hash(h) = value else {
        return match value {
            Yaml::Null => Ok(s),
            _ => Err("a section must be a mapping".into()),
        };
    };
    for (k, v) in h {
        match k.as_str() {
            Some("lookaside") | Some("sigstore") => {
                let url = v.as_str().ok_or("lookaside must be a URL")?;
                if s.lookaside.replace(url.to_string()).is_some() {
                    return Err("both lookaside and sigstore are set".into());
                }
            }
            Some("use-sigstore-attachments") => {
                s.use_sigstore_attachments = Some(
                    v.as_bool()
                        .ok_or("use-sigstore-attachments must be true or false")?,
                );
            }
            // Where signatures are written (lookaside-staging) is not Berth's business.
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_namespace_then_default_docker() {
        let mut r = RegistriesD::default();
        r.add("default-docker:\n  lookaside: https://sigs.example.com\n")
            .unwrap();
        r.add(
            "docker:\n  127.0.0.1:5000/acme:\n    lookaside: file:///srv/sigs\n    use-sigstore-attachments: true\n  127.0.0.1:5000:\n    sigstore: file:///srv/other\n",
        )
        .unwrap();
        let scopes = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let acme = scopes(&[
            "127.0.0.1:5000/acme/os",
            "127.0.0.1:5000/acme",
            "127.0.0.1:5000",
        ]);
        assert_eq!(r.lookaside(&acme), Some("file:///srv/sigs"));
        assert!(r.use_sigstore_attachments(&acme));
        let other = scopes(&["127.0.0.1:5000/x/os", "127.0.0.1:5000/x", "127.0.0.1:5000"]);
        assert_eq!(r.lookaside(&other), Some("file:///srv/other"));
        assert!(!r.use_sigstore_attachments(&other));
        assert_eq!(
            r.lookaside(&scopes(&["quay.io/a"])),
            Some("https://sigs.example.com")
        );
        assert!(r.add("default-docker:\n  lookaside: x\n").is_err());
        assert!(r
            .add("docker:\n  127.0.0.1:5000:\n    lookaside: y\n")
            .is_err());
        assert!(RegistriesD::default().add("- a list\n").is_err());
    }
}
