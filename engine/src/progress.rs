//! Progress events and cancellation shared by every long operation.

use crate::error::{Error, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Checking,
    Downloading,
    Importing,
    Staging,
    Cleanup,
    /// Comparing a deployment with its commit (drift).
    Verifying,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Checking => "checking",
            Phase::Downloading => "downloading",
            Phase::Importing => "importing",
            Phase::Staging => "staging",
            Phase::Cleanup => "cleanup",
            Phase::Verifying => "verifying",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub phase: Phase,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Layers finished in this phase, and how many the phase has.
    pub layers_done: usize,
    pub layers_total: usize,
    pub message: String,
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Wraps a callback so it fires at most once per `interval`, but never drops a phase
/// change or the event that completes a phase.
pub fn throttled(interval: Duration, inner: ProgressFn) -> ProgressFn {
    let state: Mutex<(Option<Instant>, Option<Phase>)> = Mutex::new((None, None));
    Arc::new(move |p: &Progress| {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let complete = p.bytes_done >= p.bytes_total && p.layers_done >= p.layers_total;
        let due = st.0.is_none_or(|t| now.duration_since(t) >= interval);
        if due || complete || st.1 != Some(p.phase) {
            *st = (Some(now), Some(p.phase));
            drop(st);
            inner(p);
        }
    })
}

pub fn silent() -> ProgressFn {
    Arc::new(|_| {})
}

/// Counts bytes and layers of one phase from many tasks at once and reports the sum.
pub struct Tracker {
    phase: Phase,
    bytes_done: AtomicU64,
    bytes_total: u64,
    layers_done: AtomicUsize,
    layers_total: usize,
    sink: ProgressFn,
}

impl Tracker {
    pub fn new(
        phase: Phase,
        bytes_total: u64,
        layers_total: usize,
        sink: ProgressFn,
    ) -> Arc<Tracker> {
        let t = Arc::new(Tracker {
            phase,
            bytes_done: AtomicU64::new(0),
            bytes_total,
            layers_done: AtomicUsize::new(0),
            layers_total,
            sink,
        });
        t.emit(format!("{} started", phase.as_str()));
        t
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.emit(String::new());
    }

    /// Takes back bytes counted for a download attempt that is being retried from scratch.
    pub fn sub_bytes(&self, n: u64) {
        let _ = self
            .bytes_done
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    pub fn layer_done(&self, message: String) {
        self.layers_done.fetch_add(1, Ordering::Relaxed);
        self.emit(message);
    }

    pub fn bytes_done(&self) -> u64 {
        self.bytes_done.load(Ordering::Relaxed)
    }

    fn emit(&self, message: String) {
        let done = self
            .bytes_done
            .load(Ordering::Relaxed)
            .min(self.bytes_total);
        // Layers import while others download; once every byte is in, the pull is importing.
        let phase = if self.phase == Phase::Downloading && done >= self.bytes_total {
            Phase::Importing
        } else {
            self.phase
        };
        (self.sink)(&Progress {
            phase,
            bytes_done: done,
            bytes_total: self.bytes_total,
            layers_done: self.layers_done.load(Ordering::Relaxed),
            layers_total: self.layers_total,
            message,
        });
    }
}

/// A cancellation flag shared between the caller and the work.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_keeps_phase_changes_and_completion() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let f = throttled(
            Duration::from_secs(3600),
            Arc::new(move |p: &Progress| s.lock().unwrap().push(p.clone())),
        );
        let ev = |phase, done| Progress {
            phase,
            bytes_done: done,
            bytes_total: 100,
            layers_done: 0,
            layers_total: 1,
            message: String::new(),
        };
        for i in 0..50 {
            f(&ev(Phase::Downloading, i));
        }
        f(&ev(Phase::Importing, 0));
        let mut last = ev(Phase::Importing, 100);
        last.layers_done = 1;
        f(&last);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[1].phase, Phase::Importing);
        assert_eq!(seen[2].bytes_done, 100);
    }
}
