//! Runs a command and records its wall time and peak RSS (from wait4's rusage).

use anyhow::{bail, Context, Result};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Default, Clone, Copy, Debug)]
pub struct Measured {
    pub secs: f64,
    /// The largest peak RSS among the commands measured, in KiB.
    pub peak_rss_kb: u64,
    /// User + system CPU time.
    pub cpu_secs: f64,
}

impl std::ops::AddAssign for Measured {
    fn add_assign(&mut self, o: Measured) {
        self.secs += o.secs;
        self.peak_rss_kb = self.peak_rss_kb.max(o.peak_rss_kb);
        self.cpu_secs += o.cpu_secs;
    }
}

pub fn run(cmd: &mut Command) -> Result<Measured> {
    let shown = format!("{cmd:?}");
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {shown}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.context("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    let err = reader.join().unwrap_or_default();
    if rc < 0 {
        bail!("wait4 {shown}: {}", std::io::Error::last_os_error());
    }
    let status = std::process::ExitStatus::from_raw(status);
    if !status.success() {
        bail!("{shown} failed ({status}): {err}");
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        secs,
        peak_rss_kb: usage.ru_maxrss as u64,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
    })
}
