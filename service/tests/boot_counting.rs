//! Boot counting against the boot entries ostree really writes: a sysroot on the test tmpfs
//! updated from v1 to v2 by Berth, its GRUB environment block armed by Berth's finalization,
//! the boot assessment's verdicts given through the engine as berthd's units give them, and each
//! boot played by GRUB's documented rules (tests/vm/grub-fallback.sh, the VM harness's
//! bootloader) choosing among the Boot Loader Specification entries as GRUB's blscfg orders
//! them (highest `version` first).

mod common;

use berth_engine::assessment::{BootOutcome, BootState, Reason};
use berth_engine::bootcount::{self, Trial};
use berth_engine::{deployments, progress, Cancel, Engine, UpdateOptions, UpdateOutcome};
use std::path::{Path, PathBuf};

/// The sysroot's boot entries, as GRUB's menu lists them: (version of the OS the entry
/// boots, per its `ostree=` argument), highest entry `version` first.
fn menu(sysroot: &Path) -> Vec<String> {
    let entries = sysroot.join("boot/loader/entries");
    let mut menu: Vec<(u64, String)> = std::fs::read_dir(&entries)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|text| {
            let field = |key: &str| {
                common::bls_field(&text, key).unwrap_or_else(|| panic!("no {key} in {text}"))
            };
            let version: u64 = field("version").parse().unwrap();
            let root = field("options")
                .split(' ')
                .find_map(|a| a.strip_prefix("ostree="))
                .expect("ostree= argument")
                .trim_start_matches('/');
            (version, os_version(&sysroot.join(root)))
        })
        .collect();
    menu.sort();
    menu.reverse();
    menu.into_iter().map(|(_, os)| os).collect()
}

fn os_version(root: &Path) -> String {
    std::fs::read_to_string(root.join("usr/lib/os-release"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .expect("VERSION_ID")
        .trim_matches('"')
        .to_string()
}

/// One boot: GRUB's menu script runs on the environment block and picks an entry; returns
/// the version of the OS that entry boots.
fn boot(sysroot: &Path, grubenv: &Path) -> String {
    menu(sysroot)[common::grub_boot(grubenv)].clone()
}

fn boot_entry(sysroot: &Path, entry_version: &str) {
    common::emulate_boot_of_version(sysroot, entry_version);
}

/// v1 installed from the moving tag `stable`, GRUB installed, then `stable` moves to v2 and
/// the update is staged and finalized as at shutdown, with `tries` boots to prove itself.
async fn updated_to_v2(name: &str, tries: u32) -> (common::Env, Engine, PathBuf) {
    let mut env = common::Env::new(name);
    env.config.health.tries = tries;
    let image = env.publish("1", "berth/demo:stable");
    let engine = env.install(&image).await;
    let grubenv = common::install_grub(&env.sysroot());
    env.publish("2", "berth/demo:stable");
    let out = engine
        .update(UpdateOptions::default(), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    let sysroot = deployments::open(&env.sysroot()).unwrap();
    let staged = deployments::staged(&sysroot).expect("a staged deployment");
    deployments::finalize(&sysroot, &staged, tries).unwrap();
    assert_eq!(
        menu(&env.sysroot()),
        ["2", "1"],
        "the update first, then v1"
    );
    (env, engine, grubenv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_is_never_marked_good_falls_back_and_is_not_taken_again() {
    let (env, engine, grubenv) = updated_to_v2("boot-counting", 2).await;
    assert_eq!(
        bootcount::trial(&grubenv).unwrap(),
        Trial::OnTrial { tries_left: 2 },
        "finalization put v2 on trial"
    );
    let boots: Vec<String> = (0..3).map(|_| boot(&env.sysroot(), &grubenv)).collect();
    assert_eq!(
        boots,
        ["2", "2", "1"],
        "two tries of v2, then the previous entry"
    );
    assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::FellBack);

    // The fallback boot: berth-boot-assess makes it permanent and records v2 as failed.
    boot_entry(&env.sysroot(), "1");
    let failed = match engine.assess_boot().unwrap() {
        BootOutcome::RolledBack(f) => f,
        other => panic!("expected a rollback, got {other:?}"),
    };
    assert_eq!(failed.version.as_deref(), Some("2"));
    assert_eq!(failed.reason, Reason::BootIncomplete);
    assert!(failed.digest.as_deref().unwrap().starts_with("sha256:"));
    assert_eq!(menu(&env.sysroot()), ["1", "2"], "v1 is the default again");
    for _ in 0..3 {
        assert_eq!(boot(&env.sysroot(), &grubenv), "1");
        assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::Settled);
    }
    let status = engine.status().unwrap().status.berth.boot_assessment;
    assert_eq!(status.state, BootState::Settled);
    assert_eq!(status.last_failure.as_ref(), Some(&failed));

    // A power cut after that rollback but before the counter was removed: GRUB boots entry
    // 1 again, now the failed v2. berthd takes the counter away and reboots into v1.
    bootcount::arm(&grubenv, 0).unwrap();
    assert_eq!(boot(&env.sysroot(), &grubenv), "2");
    boot_entry(&env.sysroot(), "2");
    assert_eq!(engine.assess_boot().unwrap(), BootOutcome::RebootToRollback);
    assert_eq!(boot(&env.sysroot(), &grubenv), "1");
    boot_entry(&env.sysroot(), "1");
    assert_eq!(engine.assess_boot().unwrap(), BootOutcome::Settled);

    // The same image is not taken again by an update; a newer one is.
    let out = engine
        .update(UpdateOptions::default(), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(
        matches!(&out, UpdateOutcome::KnownBad { failed: f } if f == &failed),
        "{out:?}"
    );
    let check = engine.check(None).await.unwrap();
    assert!(
        !check.update_available && check.known_bad.is_some(),
        "{check:?}"
    );
    env.publish("3", "berth/demo:stable");
    let out = engine
        .update(UpdateOptions::default(), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_health_check_is_the_reason_recorded_and_an_admin_can_mark_bad() {
    let (env, engine, grubenv) = updated_to_v2("boot-counting-bad", 3).await;
    assert_eq!(boot(&env.sysroot(), &grubenv), "2");
    boot_entry(&env.sysroot(), "2");
    assert_eq!(
        engine.assess_boot().unwrap(),
        BootOutcome::OnTrial { tries_left: 2 }
    );
    // A check fails on this try: noted, and rebooting tries again.
    assert!(engine
        .note_boot_failure(
            Reason::HealthCheckFailed,
            "/usr/lib/berth/health.d/10-net failed"
        )
        .unwrap());
    // The administrator gives up on it: the next boot falls back at once.
    engine.mark_boot_bad("marked bad by root").unwrap();
    assert_eq!(boot(&env.sysroot(), &grubenv), "1");
    boot_entry(&env.sysroot(), "1");
    let BootOutcome::RolledBack(failed) = engine.assess_boot().unwrap() else {
        panic!("expected a rollback");
    };
    assert_eq!(
        (failed.reason, failed.detail.as_str()),
        (Reason::MarkedBad, "marked bad by root")
    );
    assert_eq!(menu(&env.sysroot()), ["1", "2"]);
    // Marking a boot good when nothing is on trial changes nothing.
    assert!(!engine.mark_boot_good().unwrap(), "no trial was running");
    assert_eq!(boot(&env.sysroot(), &grubenv), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_marked_good_on_its_first_boot_stays_and_a_rollback_is_never_undone() {
    let (env, engine, grubenv) = updated_to_v2("boot-counting-good", 3).await;
    assert_eq!(boot(&env.sysroot(), &grubenv), "2");
    boot_entry(&env.sysroot(), "2");
    assert_eq!(
        engine.boot_state().unwrap(),
        BootState::OnTrial { tries_left: 2 }
    );
    assert!(engine.mark_boot_good().unwrap(), "the trial ended");
    for _ in 0..5 {
        assert_eq!(boot(&env.sysroot(), &grubenv), "2");
        assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::Settled);
    }

    // A trial interrupted by a manual rollback: the bootloader must not fall back to the
    // deployment on trial once the administrator chose the other one.
    env.publish("3", "berth/demo:stable");
    engine
        .update(UpdateOptions::default(), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    let sysroot = deployments::open(&env.sysroot()).unwrap();
    let staged = deployments::staged(&sysroot).expect("v3 staged");
    deployments::finalize(&sysroot, &staged, 1).unwrap();
    assert_eq!(boot(&env.sysroot(), &grubenv), "3");
    boot_entry(&env.sysroot(), "3");
    engine.rollback().unwrap();
    for _ in 0..3 {
        assert_eq!(
            boot(&env.sysroot(), &grubenv),
            "2",
            "the chosen rollback stays"
        );
    }
    env.fsck();
}
