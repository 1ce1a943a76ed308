//! Boot counting against the boot entries ostree really writes: a sysroot on the test tmpfs
//! updated from v1 to v2 by Berth, its GRUB environment block armed by `bootcount`, and each
//! boot played by GRUB's documented rules (tests/vm/grub-fallback.sh, the VM harness's
//! bootloader) choosing among the Boot Loader Specification entries as GRUB's blscfg orders
//! them (highest `version` first).

mod common;

use berth_engine::bootcount::{self, Trial};
use berth_engine::{deployments, progress, Cancel, UpdateOutcome};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/grub-fallback.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(grubenv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry: usize = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    menu(sysroot)[entry].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_is_never_marked_good_falls_back_to_the_previous_entry() {
    let env = common::Env::new("boot-counting");
    let engine = env.install(&env.image("1")).await;
    let out = engine
        .switch(&env.image("2"), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    let sysroot = deployments::open(&env.sysroot()).unwrap();
    let staged = deployments::staged(&sysroot).expect("a staged deployment");
    deployments::finalize(&sysroot, &staged).unwrap();
    assert_eq!(
        menu(&env.sysroot()),
        ["2", "1"],
        "the update first, then v1"
    );

    let grubenv: PathBuf = bootcount::env_path(&env.sysroot().join("boot"));
    bootcount::arm(&grubenv, 2).unwrap();
    let boots: Vec<String> = (0..3).map(|_| boot(&env.sysroot(), &grubenv)).collect();
    assert_eq!(
        boots,
        ["2", "2", "1"],
        "two tries of v2, then the previous entry"
    );
    assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::FellBack);

    // Making the fallback permanent: v1, booted, becomes the default; then counting ends.
    deployments::rollback_to_previous(&sysroot).unwrap();
    bootcount::disarm(&grubenv).unwrap();
    assert_eq!(menu(&env.sysroot()), ["1", "2"]);
    for _ in 0..3 {
        assert_eq!(boot(&env.sysroot(), &grubenv), "1");
        assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::Settled);
    }
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_marked_good_on_its_first_boot_stays() {
    let env = common::Env::new("boot-counting-good");
    let engine = env.install(&env.image("1")).await;
    engine
        .switch(&env.image("2"), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    let sysroot = deployments::open(&env.sysroot()).unwrap();
    let staged = deployments::staged(&sysroot).expect("a staged deployment");
    deployments::finalize(&sysroot, &staged).unwrap();

    let grubenv = bootcount::env_path(&env.sysroot().join("boot"));
    bootcount::arm(&grubenv, 3).unwrap();
    assert_eq!(boot(&env.sysroot(), &grubenv), "2");
    assert_eq!(
        bootcount::trial(&grubenv).unwrap(),
        Trial::OnTrial { tries_left: 2 }
    );
    bootcount::bless(&grubenv).unwrap();
    for _ in 0..5 {
        assert_eq!(boot(&env.sysroot(), &grubenv), "2");
        assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::Settled);
    }
}
