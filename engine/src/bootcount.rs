//! Boot counting: a new deployment boots "on trial" for a bounded number of tries, and the
//! bootloader falls back to the previous one when they run out.
//!
//! libostree 2022.7 writes Boot Loader Specification entries without try counters (ostree's
//! `boot-counting-tries` came in 2024), and systemd-bless-boot needs systemd-boot's EFI
//! variables. Berth therefore uses the model greenboot ships for ostree systems on GRUB: two
//! variables in GRUB's environment block, read and written by GRUB's own menu script
//! (Fedora's `08_fallback_counting` and `10_reset_boot_success`) at every boot:
//!
//! - `boot_counter` set and `boot_success=0`: a trial. If the counter is 0 or -1 GRUB boots
//!   entry 1 (the previous deployment) and sets it to -1; otherwise it decrements it and
//!   boots the default entry.
//! - `boot_success` is then set to 0 whatever happened: only a boot that reports success
//!   (Berth's `bless`, after `boot-complete.target`) sets it to 1 again.
//!
//! So a counter of N gives the new deployment N boots; a counter of -1 in the booted system
//! says the bootloader fell back.

use crate::error::Result;
use crate::grubenv::{self, GrubEnv};
use std::path::{Path, PathBuf};

pub const COUNTER: &str = "boot_counter";
pub const SUCCESS: &str = "boot_success";
/// Tries a new deployment gets unless configured otherwise.
pub const DEFAULT_TRIES: u32 = 3;

/// Where the boot counters of the bootloader are, as seen from the running system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trial {
    /// Nothing on trial: the booted deployment was marked good, or counting is not armed.
    Settled,
    /// The booted deployment is on trial, with this many boots left after this one.
    OnTrial { tries_left: u32 },
    /// The tries ran out and the bootloader booted the previous deployment.
    FellBack,
}

/// The environment block under `boot`: GRUB 2 as Fedora installs it (`grub2/`), else Debian's
/// layout (`grub/`).
pub fn env_path(boot: &Path) -> PathBuf {
    let fedora = boot.join("grub2");
    if fedora.is_dir() {
        fedora.join("grubenv")
    } else {
        boot.join("grub").join("grubenv")
    }
}

/// Puts the next boot of the default deployment on trial for `tries` boots.
pub fn arm(env: &Path, tries: u32) -> Result<()> {
    update(env, |vars| {
        vars.set(COUNTER, &tries.to_string());
        vars.set(SUCCESS, "0");
    })
}

/// Marks the booted deployment good: the bootloader counts no more.
pub fn bless(env: &Path) -> Result<()> {
    update(env, |vars| {
        vars.set(SUCCESS, "1");
        vars.unset(COUNTER);
    })
}

/// Ends a trial without a verdict: after a fallback was made permanent, or when a trial is
/// cancelled (the staged update discarded).
pub fn disarm(env: &Path) -> Result<()> {
    update(env, |vars| vars.unset(COUNTER))
}

/// Reads the state the bootloader left.
pub fn trial(env: &Path) -> Result<Trial> {
    let vars = grubenv::read(env)?;
    let counter = vars.get(COUNTER).and_then(|c| c.trim().parse::<i64>().ok());
    Ok(match counter {
        None => Trial::Settled,
        Some(c) if c < 0 => Trial::FellBack,
        Some(_) if vars.get(SUCCESS) == Some("1") => Trial::Settled,
        Some(c) => Trial::OnTrial {
            tries_left: u32::try_from(c).unwrap_or(u32::MAX),
        },
    })
}

fn update(env: &Path, change: impl FnOnce(&mut GrubEnv)) -> Result<()> {
    let mut vars = grubenv::read(env)?;
    change(&mut vars);
    grubenv::write(env, &vars)
}

#[cfg(test)]
mod tests {
    //! The counting rules against GRUB's, played by the script the VM harness boots with.
    use super::*;
    use std::process::Command;

    /// One boot: GRUB's menu script runs on the block; returns the entry it boots.
    fn grub_boots(env: &Path) -> u32 {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/grub-fallback.sh");
        let out = Command::new("bash").arg(script).arg(env).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn boot_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("grub")).unwrap();
        let env = env_path(dir.path());
        (dir, env)
    }

    #[test]
    fn a_trial_that_is_never_blessed_falls_back_after_its_tries() {
        let (_dir, env) = boot_dir();
        arm(&env, 3).unwrap();
        for left in [2, 1, 0] {
            assert_eq!(grub_boots(&env), 0, "a try of the new deployment");
            assert_eq!(trial(&env).unwrap(), Trial::OnTrial { tries_left: left });
        }
        assert_eq!(
            grub_boots(&env),
            1,
            "tries exhausted: the previous deployment"
        );
        assert_eq!(trial(&env).unwrap(), Trial::FellBack);
        assert_eq!(
            grub_boots(&env),
            1,
            "and it stays there until the fallback is handled"
        );
        // Handling it: the failed deployment stops being the default (berthd reorders the
        // deployments), then counting ends and the bootloader boots the new default, entry 0.
        disarm(&env).unwrap();
        assert_eq!(trial(&env).unwrap(), Trial::Settled);
        assert_eq!(grub_boots(&env), 0);
    }

    #[test]
    fn a_blessed_deployment_is_never_counted_again() {
        let (_dir, env) = boot_dir();
        arm(&env, 2).unwrap();
        assert_eq!(grub_boots(&env), 0);
        bless(&env).unwrap();
        assert_eq!(trial(&env).unwrap(), Trial::Settled);
        for _ in 0..5 {
            assert_eq!(grub_boots(&env), 0);
            assert_eq!(trial(&env).unwrap(), Trial::Settled);
            let vars = grubenv::read(&env).unwrap();
            assert_eq!(vars.get(COUNTER), None);
            assert_eq!(vars.get(SUCCESS), Some("0"), "GRUB resets it at every boot");
        }
    }

    #[test]
    fn the_last_try_can_still_be_blessed() {
        let (_dir, env) = boot_dir();
        arm(&env, 1).unwrap();
        assert_eq!(grub_boots(&env), 0);
        assert_eq!(trial(&env).unwrap(), Trial::OnTrial { tries_left: 0 });
        bless(&env).unwrap();
        assert_eq!(grub_boots(&env), 0);
        assert_eq!(trial(&env).unwrap(), Trial::Settled);
    }

    #[test]
    fn unarmed_or_missing_blocks_boot_the_default_and_keep_other_variables() {
        let (dir, env) = boot_dir();
        assert_eq!(grub_boots(&env), 0);
        assert!(!env.exists(), "GRUB cannot create a block");
        assert_eq!(trial(&env).unwrap(), Trial::Settled);
        let mut vars = GrubEnv::default();
        vars.set("saved_entry", "ostree-2");
        grubenv::write(&env, &vars).unwrap();
        arm(&env, 3).unwrap();
        assert_eq!(grub_boots(&env), 0);
        let after = grubenv::read(&env).unwrap();
        assert_eq!(after.get("saved_entry"), Some("ostree-2"));
        assert_eq!(after.get(COUNTER), Some("2"));
        assert_eq!(std::fs::metadata(&env).unwrap().len(), grubenv::SIZE as u64);
        // Fedora's layout wins when it is there.
        std::fs::create_dir(dir.path().join("grub2")).unwrap();
        assert_eq!(env_path(dir.path()), dir.path().join("grub2/grubenv"));
    }

    #[test]
    fn a_block_that_is_not_grubs_is_a_named_error() {
        let (_dir, env) = boot_dir();
        std::fs::write(&env, "boot_counter=3\n").unwrap();
        let e = arm(&env, 3).unwrap_err();
        assert_eq!(e.name(), "InvalidConfiguration");
        assert!(e.to_string().contains("grubenv"), "{e}");
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "boot_counter=3\n");
    }
}
