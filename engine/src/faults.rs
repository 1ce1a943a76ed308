//! Named points in the deployment writes where a power cut is tested: after the new deployment
//! is checked out (`deployed`), after the new boot entries are written (`entries-written`),
//! after they are flushed (`flushed`) and after the old ones are cleaned up (`cleaned`).
//!
//! Two ways to stop there, both for tests only; neither changes what is written:
//! - in-process tests register an observer, which runs at each point (it copies the disk);
//! - `BERTH_FAULT_HOLD=<point>` in the environment (the VM sets it in a drop-in for
//!   `berth-finalize-staged.service`) makes the process log `holding at <point>` and wait, so
//!   a power cut lands exactly there. Only root can set a service's environment.

use std::sync::OnceLock;
use std::time::Duration;

pub const DEPLOYED: &str = "deployed";
pub const ENTRIES_WRITTEN: &str = "entries-written";
pub const FLUSHED: &str = "flushed";
pub const CLEANED: &str = "cleaned";

const HOLD_ENV: &str = "BERTH_FAULT_HOLD";
/// A hold ends by itself after this long, so a forgotten variable cannot hang a shutdown.
const HOLD_AT_MOST: Duration = Duration::from_secs(600);

type Observer = Box<dyn Fn(&str) + Send + Sync>;
static OBSERVER: OnceLock<Observer> = OnceLock::new();

/// Registers the process's observer (once; later calls are ignored and return false).
pub fn observe(f: impl Fn(&str) + Send + Sync + 'static) -> bool {
    OBSERVER.set(Box::new(f)).is_ok()
}

/// Marks that the write reached `point`.
pub fn point(point: &str) {
    if let Some(f) = OBSERVER.get() {
        f(point);
    }
    if std::env::var(HOLD_ENV).is_ok_and(|v| v == point) {
        tracing::warn!("holding at {point} for a power cut ({HOLD_ENV})");
        std::thread::sleep(HOLD_AT_MOST);
    }
}
