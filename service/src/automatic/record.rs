//! What the scheduler remembers across restarts and reboots (`ostree/berth/schedule.json`):
//! when it last looked and what it found, when it runs next, and the images it must not
//! take again.

use berth_engine::config::Automatic;
use serde::{Deserialize, Serialize};
use std::path::Path;

const FILE: &str = "ostree/berth/schedule.json";
/// Failures of one image before the scheduler stops taking it (until a newer one appears).
pub const GIVE_UP_AFTER: u32 = 3;
/// Digests remembered as rolled back or given up: enough for any real history.
const KEEP_DIGESTS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Record {
    /// The boot the schedule was made in: a new boot checks `first-check-delay` after start.
    pub boot_id: String,
    /// When the scheduler last asked the registry (seconds since the epoch; 0: never).
    pub last_check: u64,
    /// What the last step came to, in words.
    pub last_outcome: String,
    /// When the next step runs.
    pub next_run: u64,
    /// Failures in a row (any step); the backoff doubles with each.
    pub failures: u32,
    /// The image that failed last, and how often in a row.
    pub failed_digest: Option<String>,
    pub digest_failures: u32,
    /// Images not taken again: failed GIVE_UP_AFTER times, or rolled back by hand.
    pub given_up: Vec<String>,
    pub rolled_back: Vec<String>,
    /// The image last announced as found (announced once).
    pub found: Option<String>,
    /// What the scheduler staged, and when: only that is rebooted into.
    pub staged_digest: Option<String>,
    pub staged_at: u64,
    /// The fleet's reboot slot this machine holds, kept across its reboot.
    pub reboot_slot: Option<HeldSlot>,
}

/// A slot of the reboot semaphore in etcd (see `fleet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HeldSlot {
    /// The etcd lease the slot lives under.
    pub lease: i64,
    pub group: String,
    /// The image (manifest digest) the machine rebooted for.
    pub target: String,
}

pub fn load(sysroot: &Path) -> Record {
    let path = sysroot.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{} is unreadable ({e}); starting a new schedule",
                path.display()
            );
            Record::default()
        }),
        Err(_) => Record::default(),
    }
}

pub fn store(sysroot: &Path, record: &Record) {
    let path = sysroot.join(FILE);
    let json = serde_json::to_vec_pretty(record).expect("serializable");
    if let Err(e) = berth_engine::write_atomic(&path, &json) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

/// The wait after the `failures`-th failure in a row: the retry interval, doubled per
/// failure, capped.
pub fn backoff(s: &Automatic, failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    s.retry_interval
        .saturating_mul(1u64 << doublings)
        .min(s.max_backoff)
}

impl Record {
    /// A step that ended well (or had nothing to do): the next one an interval later.
    pub fn done(&mut self, now: u64, s: &Automatic, outcome: String) {
        self.failures = 0;
        self.next_run = now + s.check_interval + jitter(s.jitter);
        self.last_outcome = outcome;
    }

    /// A step held back by a condition: tried again at `retry` (the step is not at fault).
    pub fn held(&mut self, retry: u64, outcome: String) {
        self.next_run = retry;
        self.last_outcome = outcome;
    }

    /// A step that failed, on `digest` if it concerned an image.
    pub fn failed(&mut self, now: u64, s: &Automatic, digest: Option<&str>, outcome: String) {
        self.failures += 1;
        self.next_run = now + backoff(s, self.failures);
        self.last_outcome = outcome;
        let Some(digest) = digest else {
            return;
        };
        if self.failed_digest.as_deref() == Some(digest) {
            self.digest_failures += 1;
        } else {
            self.failed_digest = Some(digest.to_string());
            self.digest_failures = 1;
        }
        if self.digest_failures >= GIVE_UP_AFTER {
            remember(&mut self.given_up, digest);
        }
    }

    pub fn note_rolled_back(&mut self, digest: &str) {
        remember(&mut self.rolled_back, digest);
    }

    /// Why the scheduler does not take this image, if it does not.
    pub fn refuses(&self, digest: &str) -> Option<String> {
        if self.rolled_back.iter().any(|d| d == digest) {
            return Some("it was rolled back on this machine".into());
        }
        if self.given_up.iter().any(|d| d == digest) {
            return Some(format!("it failed {GIVE_UP_AFTER} times in a row"));
        }
        None
    }
}

fn remember(list: &mut Vec<String>, digest: &str) {
    if !list.iter().any(|d| d == digest) {
        list.push(digest.to_string());
    }
    if list.len() > KEEP_DIGESTS {
        list.remove(0);
    }
}

fn jitter(max: u64) -> u64 {
    if max == 0 {
        0
    } else {
        fastrand::u64(0..max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_one_image_is_given_up() {
        let s = Automatic {
            retry_interval: 60,
            max_backoff: 300,
            check_interval: 1000,
            jitter: 0,
            ..Automatic::default()
        };
        let waits: Vec<u64> = (1..=5).map(|n| backoff(&s, n)).collect();
        assert_eq!(waits, [60, 120, 240, 300, 300]);
        let mut r = Record::default();
        r.failed(0, &s, None, "check failed".into());
        assert_eq!((r.failures, r.next_run), (1, 60));
        r.failed(100, &s, Some("sha256:a"), "download failed".into());
        assert_eq!(r.next_run, 220);
        r.failed(100, &s, Some("sha256:a"), "".into());
        assert!(r.refuses("sha256:a").is_none());
        r.failed(100, &s, Some("sha256:a"), "".into());
        assert!(r.refuses("sha256:a").is_some(), "three times in a row");
        assert!(r.refuses("sha256:b").is_none(), "a newer image is taken");
        r.done(1000, &s, "up to date".into());
        assert_eq!((r.failures, r.next_run), (0, 2000));
        r.note_rolled_back("sha256:c");
        assert!(r.refuses("sha256:c").unwrap().contains("rolled back"));
        assert_eq!(
            backoff(
                &Automatic {
                    retry_interval: u64::MAX,
                    ..s
                },
                40
            ),
            300
        );
    }
}
