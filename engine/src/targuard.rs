//! A guard in front of the tar reader. The `tar` crate reads a GNU long name or link (`L`,
//! `K`) and a PAX header (`x`, `g`) whole into memory, whatever size its header claims, so one
//! hostile header could claim gigabytes. This reader passes the stream through unchanged
//! while following the archive's structure (header, data padded to 512 bytes, GNU sparse
//! extension blocks, a PAX `size` overriding the next entry's) and fails, before the tar
//! reader buffers anything, on an extension header larger than the cap. It reads every
//! header with the `tar` crate's own parsers (size field, PAX `size` record), so the two can
//! never disagree about where the next header starts; a field the crate cannot parse fails
//! here first.

use std::io::{self, Read};

const BLOCK: usize = 512;

/// The error a capped header raises (wrapped in an `InvalidData` I/O error).
#[derive(Debug)]
pub struct HeaderTooLarge {
    pub kind: char,
    pub size: u64,
    pub cap: u64,
}

impl std::fmt::Display for HeaderTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a tar '{}' extension header of {} bytes exceeds the {} allowed",
            self.kind, self.size, self.cap
        )
    }
}

impl std::error::Error for HeaderTooLarge {}

enum Expect {
    /// Collecting a 512-byte block: a header, or (`sparse_ext`) a GNU sparse extension.
    Block { sparse_ext: bool },
    /// Data of the current entry still to pass, and whether it is a PAX header to parse.
    Data { left: u64, pax: Option<Vec<u8>> },
    /// After the end-of-archive marker: whatever follows passes unchecked.
    End,
}

pub struct HeaderGuard<R> {
    inner: R,
    cap: u64,
    expect: Expect,
    block: [u8; BLOCK],
    filled: usize,
    /// A PAX `size` for the next entry.
    next_size: Option<u64>,
}

impl<R: Read> HeaderGuard<R> {
    pub fn new(inner: R, cap: u64) -> Self {
        HeaderGuard {
            inner,
            cap,
            expect: Expect::Block { sparse_ext: false },
            block: [0; BLOCK],
            filled: 0,
            next_size: None,
        }
    }

    /// Follows `bytes`, just read, through the archive's structure.
    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.expect {
                Expect::End => return Ok(()),
                Expect::Data { left, pax } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if let Some(p) = pax {
                        p.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if let Some(p) = pax.take() {
                            self.next_size = pax_size(&p);
                        }
                        self.expect = Expect::Block { sparse_ext: false };
                    }
                }
                Expect::Block { sparse_ext } => {
                    let sparse_ext = *sparse_ext;
                    let n = (BLOCK - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.expect = if sparse_ext {
                            self.after_sparse_block(self.block[504] != 0)
                        } else {
                            self.after_header()?
                        };
                    }
                }
            }
        }
        Ok(())
    }

    fn after_header(&mut self) -> io::Result<Expect> {
        if self.block.iter().all(|&b| b == 0) {
            return Ok(Expect::End);
        }
        let header = tar::Header::from_byte_slice(&self.block);
        let size = header
            .entry_size()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let t = header.entry_type();
        let extension = t.is_gnu_longname()
            || t.is_gnu_longlink()
            || t.is_pax_local_extensions()
            || t.is_pax_global_extensions();
        if extension && size > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                HeaderTooLarge {
                    kind: self.block[156] as char,
                    size,
                    cap: self.cap,
                },
            ));
        }
        let data = if extension {
            size
        } else {
            self.next_size.take().unwrap_or(size)
        };
        let pax = t.is_pax_local_extensions().then(Vec::new);
        if t.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
            // GNU sparse: extension blocks follow the header, then the data.
            self.next_size = Some(data);
            return Ok(Expect::Block { sparse_ext: true });
        }
        Ok(self.data(padded(data), pax))
    }

    fn after_sparse_block(&mut self, more: bool) -> Expect {
        if more {
            Expect::Block { sparse_ext: true }
        } else {
            let size = self.next_size.take().unwrap_or(0);
            self.data(padded(size), None)
        }
    }

    fn data(&self, left: u64, pax: Option<Vec<u8>>) -> Expect {
        if left == 0 {
            // An empty PAX header still resets the next entry's size.
            Expect::Block { sparse_ext: false }
        } else {
            Expect::Data { left, pax }
        }
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64)
}

/// The `size` of a PAX header, found exactly as the `tar` crate finds it: the first `size`
/// record; nothing if a record before it is malformed.
fn pax_size(pax: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(pax) {
        let record = record.ok()?;
        if record.key() != Ok("size") {
            continue;
        }
        return record.value().ok()?.parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, size) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(*size as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, &vec![7u8; *size][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names_through_guard(bytes: &[u8], cap: u64) -> io::Result<Vec<String>> {
        let mut a = tar::Archive::new(HeaderGuard::new(bytes, cap));
        let mut out = Vec::new();
        for e in a.entries()? {
            let e = e?;
            out.push(e.path()?.display().to_string());
        }
        Ok(out)
    }

    #[test]
    fn real_archives_pass_unchanged() {
        let long = format!("usr/{}/file", "d".repeat(300));
        let bytes = archive(&[("a", 10), (&long, 1000), ("b", 0), ("c", 512)]);
        let mut copy = Vec::new();
        HeaderGuard::new(&bytes[..], 1 << 20)
            .read_to_end(&mut copy)
            .unwrap();
        assert_eq!(copy, bytes);
        assert_eq!(
            names_through_guard(&bytes, 1 << 20).unwrap(),
            vec!["a".to_string(), long, "b".into(), "c".into()]
        );
    }

    #[test]
    fn a_pax_size_moves_the_next_header() {
        // A PAX header that says the next entry holds 600 bytes while its ustar size says 0.
        let record = "12 size=600\n";
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_cksum();
        let mut file = tar::Header::new_ustar();
        file.set_path("big").unwrap();
        file.set_size(0);
        file.set_cksum();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(pax.as_bytes());
        bytes.extend_from_slice(record.as_bytes());
        bytes.resize(1024, 0);
        bytes.extend_from_slice(file.as_bytes());
        bytes.extend(std::iter::repeat_n(1u8, 600));
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        let tail = archive(&[("after", 5)]);
        bytes.extend_from_slice(&tail);
        assert_eq!(
            names_through_guard(&bytes, 1 << 20).unwrap(),
            vec!["big".to_string(), "after".into()]
        );
    }

    #[test]
    fn size_fields_read_as_the_tar_crate_reads_them() {
        // "+" and spaces around octal digits, and base-256 with junk in its high bytes: each
        // once made the guard and the tar reader disagree on where the next header was.
        for field in [
            &b"+0000001000\0"[..],
            b" 00000001000",
            b"\x80\x01\x02\x03\0\0\0\0\0\0\x02\0",
        ] {
            let mut file = tar::Header::new_gnu();
            file.set_path("f").unwrap();
            file.as_mut_bytes()[124..136].copy_from_slice(field);
            file.set_cksum();
            let size = file.entry_size().unwrap();
            let mut bytes = file.as_bytes().to_vec();
            bytes.extend(std::iter::repeat_n(0u8, padded(size) as usize));
            let mut long = tar::Header::new_gnu();
            long.set_entry_type(tar::EntryType::GNULongName);
            long.set_size(8 << 30);
            long.set_cksum();
            bytes.extend_from_slice(long.as_bytes());
            bytes.extend(std::iter::repeat_n(b'a', 4096));
            let err = names_through_guard(&bytes, 1 << 20).unwrap_err();
            assert!(
                err.get_ref()
                    .and_then(|e| e.downcast_ref::<HeaderTooLarge>())
                    .is_some(),
                "{field:?}: {err}"
            );
        }
    }

    #[test]
    fn a_huge_long_name_header_is_refused_before_it_is_read() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(8 << 30);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 4096));
        let err = names_through_guard(&bytes, 1 << 20).unwrap_err();
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<HeaderTooLarge>());
        assert!(inner.is_some_and(|h| h.size == 8 << 30), "{err}");
    }
}
