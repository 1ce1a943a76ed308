//! A blob that is still being downloaded, readable while it grows: the import of a layer
//! follows its download through the cache file instead of waiting for the last byte, so the
//! two overlap. The reader only sees end-of-file once the download verified the blob's
//! digest; if the download fails, or has to restart from byte 0 (the source ignored a range
//! request), the reader fails and the import is redone from the finished blob.

use crate::progress::Cancel;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Where the bytes are (the partial file, then the verified blob).
    path: Option<PathBuf>,
    written: u64,
    /// `Some(true)`: complete and verified; `Some(false)`: failed.
    outcome: Option<bool>,
    restarted: bool,
}

#[derive(Default)]
pub struct Growing {
    state: Mutex<State>,
    cond: Condvar,
}

impl Growing {
    pub fn new() -> Arc<Growing> {
        Arc::new(Growing::default())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        self.cond.notify_all();
    }

    /// The download writes to `path`, which already holds `have` bytes.
    pub fn opened(&self, path: PathBuf, have: u64) {
        self.update(|s| {
            s.path = Some(path);
            s.written = have;
        });
    }

    pub fn wrote(&self, total: u64) {
        self.update(|s| s.written = total);
    }

    /// The bytes written so far are void: the download starts over.
    pub fn restarted(&self) {
        self.update(|s| s.restarted = true);
    }

    /// The blob is complete and verified at `path`, or the download failed (`None`).
    pub fn finish(&self, verified_at: Option<PathBuf>) {
        self.update(|s| match verified_at {
            Some(p) => {
                s.written = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(s.written);
                s.path = Some(p);
                s.outcome = Some(true);
            }
            None => s.outcome = Some(false),
        });
    }

    /// The download was dropped before it ended (its pull failed elsewhere): a reader must
    /// not wait for bytes that will never come. No effect once the download has finished.
    pub fn abandon(&self) {
        self.update(|s| {
            if s.outcome.is_none() {
                s.outcome = Some(false);
            }
        });
    }

    pub fn was_restarted(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restarted
    }

    pub fn reader(self: &Arc<Self>, cancel: &Cancel) -> GrowingReader {
        GrowingReader {
            blob: self.clone(),
            cancel: cancel.clone(),
            file: None,
            pos: 0,
        }
    }
}

pub struct GrowingReader {
    blob: Arc<Growing>,
    cancel: Cancel,
    file: Option<std::fs::File>,
    pos: u64,
}

impl Read for GrowingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.blob.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.cancel.is_cancelled() {
                // Not `Interrupted`: readers retry that kind.
                return Err(io::Error::other("cancelled"));
            }
            if s.restarted {
                return Err(io::Error::other("the download restarted"));
            }
            if s.outcome == Some(false) {
                return Err(io::Error::other("the download failed"));
            }
            if self.file.is_none() {
                if let Some(path) = &s.path {
                    match std::fs::File::open(path) {
                        Ok(f) => self.file = Some(f),
                        // Renamed into place meanwhile: `finish` updates the path.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if let Some(file) = &self.file {
                if self.pos < s.written {
                    let want = (s.written - self.pos).min(buf.len() as u64) as usize;
                    drop(s);
                    let n = file.read_at(&mut buf[..want], self.pos)?;
                    self.pos += n as u64;
                    return Ok(n);
                }
                if s.outcome == Some(true) {
                    return Ok(0);
                }
            }
            s = self
                .blob
                .cond
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
