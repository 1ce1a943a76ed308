//! GRUB's environment block (`grubenv`), the one file GRUB itself writes at boot.
//!
//! Boot counting on GRUB (greenboot's model for ostree systems) keeps its state here:
//! `boot_counter` (tries left) and `boot_success`. The format is GRUB's `envblk`: the
//! signature line, `name=value` lines (a backslash escapes a backslash or a newline in a
//! value), and `#` padding up to a fixed size (1024 bytes), which GRUB needs because it
//! rewrites the file's blocks in place and can never grow it.

use crate::error::{Error, Result};
use std::path::Path;

/// What is wrong with a block or a variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBlock(String);

/// The first line of every environment block.
pub const SIGNATURE: &str = "# GRUB Environment Block\n";
/// The size `grub-editenv create` gives a block, and the one Berth writes.
pub const SIZE: usize = 1024;

/// The variables of an environment block, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubEnv {
    vars: Vec<(String, String)>,
}

impl GrubEnv {
    /// Parses a block as GRUB does: after the signature, `name=value` lines; lines starting
    /// with `#` (the padding) are skipped.
    pub fn parse(block: &[u8]) -> std::result::Result<GrubEnv, BadBlock> {
        let text = std::str::from_utf8(block).map_err(|_| BadBlock("not UTF-8 text".into()))?;
        let body = text
            .strip_prefix(SIGNATURE)
            .ok_or_else(|| BadBlock("no GRUB environment block signature".into()))?;
        let mut env = GrubEnv::default();
        for line in split_lines(body) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| BadBlock(format!("line without '=': {line:?}")))?;
            env.set(name, &unescape(value));
        }
        Ok(env)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a variable in place, or appends it (as `grub_envblk_set` does).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    pub fn unset(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name);
    }

    /// The block GRUB reads: exactly [`SIZE`] bytes.
    pub fn to_block(&self) -> std::result::Result<Vec<u8>, BadBlock> {
        let mut out = String::from(SIGNATURE);
        for (name, value) in &self.vars {
            if name.is_empty() || name.contains(['=', '\n']) || name.starts_with('#') {
                return Err(BadBlock(format!("invalid variable name {name:?}")));
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&escape(value));
            out.push('\n');
        }
        if out.len() > SIZE {
            return Err(BadBlock(format!(
                "{} bytes of variables do not fit in a {SIZE}-byte block",
                out.len()
            )));
        }
        let mut block = out.into_bytes();
        block.resize(SIZE, b'#');
        Ok(block)
    }
}

/// Reads the block at `path`; a missing file is an empty environment.
pub fn read(path: &Path) -> Result<GrubEnv> {
    match std::fs::read(path) {
        Ok(block) => GrubEnv::parse(&block).map_err(|e| invalid(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GrubEnv::default()),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Replaces the block at `path` atomically (a power cut leaves the old block or the new one)
/// and makes it visible to the bootloader, which reads the disk without the journal.
pub fn write(path: &Path, env: &GrubEnv) -> Result<()> {
    let block = env.to_block().map_err(|e| invalid(path, e))?;
    crate::fsutil::write_atomic(path, &block)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    crate::bootflush::flush(dir)?;
    Ok(())
}

/// A bad block is the bootloader's configuration gone wrong: named with its file.
fn invalid(path: &Path, e: BadBlock) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        reason: e.0,
    }
}

/// Lines of a block body; a newline preceded by an escaping backslash belongs to the value.
fn split_lines(body: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\n' => {
                lines.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    lines.push(&body[start..]);
    lines
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c == '\n' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_exactly_1024_bytes_padded_with_hashes() {
        let mut env = GrubEnv::default();
        env.set("boot_counter", "3");
        env.set("boot_success", "0");
        let block = env.to_block().unwrap();
        assert_eq!(block.len(), SIZE);
        let text = String::from_utf8(block.clone()).unwrap();
        assert!(text.starts_with("# GRUB Environment Block\nboot_counter=3\nboot_success=0\n#"));
        assert!(text[SIGNATURE.len() + 31..].bytes().all(|b| b == b'#'));
        assert_eq!(GrubEnv::parse(&block).unwrap(), env);
    }

    #[test]
    fn set_replaces_in_place_and_unset_removes() {
        let mut env = GrubEnv::default();
        env.set("saved_entry", "0");
        env.set("boot_counter", "3");
        env.set("saved_entry", "1");
        assert_eq!(env.get("saved_entry"), Some("1"));
        env.unset("boot_counter");
        assert_eq!(env.get("boot_counter"), None);
        let text = String::from_utf8(env.to_block().unwrap()).unwrap();
        assert!(text.starts_with("# GRUB Environment Block\nsaved_entry=1\n#"));
    }

    #[test]
    fn backslashes_and_newlines_in_values_round_trip_escaped() {
        let mut env = GrubEnv::default();
        env.set("kernelopts", "a\\b\nc");
        env.set("next", "x");
        let block = env.to_block().unwrap();
        assert!(String::from_utf8_lossy(&block).contains("kernelopts=a\\\\b\\\nc\nnext=x\n"));
        assert_eq!(GrubEnv::parse(&block).unwrap(), env);
    }

    #[test]
    fn a_block_without_signature_or_too_full_is_refused() {
        assert!(matches!(
            GrubEnv::parse(b"boot_counter=3\n"),
            Err(BadBlock(_))
        ));
        let mut env = GrubEnv::default();
        env.set("big", &"x".repeat(SIZE));
        assert!(matches!(env.to_block(), Err(BadBlock(_))));
        env.set("big", "small");
        env.set("a=b", "1");
        assert!(matches!(env.to_block(), Err(BadBlock(_))));
    }

    #[test]
    fn grub_editenv_blocks_are_read() {
        // What `grub-editenv FILE create; grub-editenv FILE set boot_success=1` writes.
        let mut block = b"# GRUB Environment Block\nboot_success=1\n".to_vec();
        block.resize(SIZE, b'#');
        assert_eq!(
            GrubEnv::parse(&block).unwrap().get("boot_success"),
            Some("1")
        );
    }
}
