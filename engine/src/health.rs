//! Health checks an image or an administrator adds: executables in `health.d` directories,
//! run on a trial boot before `boot-complete.target`. As with systemd's own configuration
//! directories, a check in `/etc/berth/health.d` replaces the image's check of the same name
//! in `/usr/lib/berth/health.d`, and one linked to `/dev/null` is switched off. Every check
//! must exit 0 within the timeout; the first that does not fails the boot.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The image's checks, then the administrator's.
pub const DIRS: [&str; 2] = ["/usr/lib/berth/health.d", "/etc/berth/health.d"];

/// The checks to run, by name (the order they run in), later directories overriding earlier.
pub fn checks(dirs: &[&Path]) -> Result<Vec<PathBuf>> {
    let mut by_name = BTreeMap::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            by_name.insert(name, entry.path());
        }
    }
    Ok(by_name
        .into_values()
        .filter(|p| std::fs::canonicalize(p).ok().as_deref() != Some(Path::new("/dev/null")))
        .collect())
}

/// Runs every check in `dirs`; returns how many passed, or `HealthCheckFailed` naming the
/// first that failed, could not run, or ran past `timeout` (it is then killed).
pub async fn run(dirs: &[&Path], timeout: Duration) -> Result<usize> {
    let checks = checks(dirs)?;
    for check in &checks {
        let name = check.display();
        tracing::info!("health check {name}: running");
        let mut child = tokio::process::Command::new(check)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::HealthCheckFailed(format!("{name} could not run: {e}")))?;
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(s) => s.map_err(|e| Error::io(format!("wait for {name}"), e))?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(Error::HealthCheckFailed(format!(
                    "{name} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
        };
        if !status.success() {
            return Err(Error::HealthCheckFailed(format!(
                "{name} failed ({status})"
            )));
        }
        tracing::info!("health check {name}: passed");
    }
    Ok(checks.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (usr, etc) = (t.path().join("usr"), t.path().join("etc"));
        std::fs::create_dir_all(&usr).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        (t, usr, etc)
    }

    #[tokio::test]
    async fn all_pass_in_name_order_and_etc_overrides_usr() {
        let (t, usr, etc) = dirs();
        let log = t.path().join("log");
        let l = log.display();
        script(&usr, "20-b", &format!("echo usr-b >> {l}"));
        script(&usr, "10-a", &format!("echo usr-a >> {l}"));
        script(&usr, "30-c", "exit 1");
        script(&etc, "30-c", &format!("echo etc-c >> {l}"));
        let n = run(&[&usr, &etc], Duration::from_secs(10)).await.unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "usr-a\nusr-b\netc-c\n"
        );
    }

    #[tokio::test]
    async fn a_failing_check_fails_and_a_masked_one_is_skipped() {
        let (_t, usr, etc) = dirs();
        script(&usr, "10-ok", "true");
        script(&usr, "20-bad", "exit 3");
        let e = run(&[&usr, &etc], Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(e.name(), "HealthCheckFailed");
        assert!(e.to_string().contains("20-bad failed"), "{e}");
        std::os::unix::fs::symlink("/dev/null", etc.join("20-bad")).unwrap();
        assert_eq!(
            run(&[&usr, &etc], Duration::from_secs(10)).await.unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn a_hanging_check_is_killed_at_the_timeout() {
        let (_t, usr, etc) = dirs();
        script(&usr, "10-hang", "sleep 600");
        let e = run(&[&usr, &etc], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not finish within 1 s"), "{e}");
    }

    #[tokio::test]
    async fn a_check_that_cannot_run_fails() {
        let (_t, usr, etc) = dirs();
        std::fs::write(usr.join("10-not-executable"), "true\n").unwrap();
        let e = run(&[&usr, &etc], Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("could not run"), "{e}");
    }

    #[tokio::test]
    async fn no_directories_no_checks() {
        let (t, _usr, _etc) = dirs();
        let none = t.path().join("absent");
        assert_eq!(run(&[&none], Duration::from_secs(1)).await.unwrap(), 0);
    }
}
