//! Drift: `Engine::verify`, the Verify method and `berth verify` name exactly what differs
//! between a deployment's /usr and its commit, and an untouched deployment is clean.

mod common;

use berth_dbus::options;
use berth_engine::drift::{Aspect, Change, DriftReport};
use berth_engine::{progress, Cancel};
use berth_testkit::bus::users;
use berth_testkit::image::{self, Entry, Layer};
use common::service::{berth, stderr, stdout, Service};
use common::Env;
use futures_util::StreamExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Writes `content` as a new file (a new inode, so the repository's object behind the old
/// one stays intact) and renames it over `path`.
fn replace(path: &Path, content: &[u8], mode: u32, owner: (u32, u32)) {
    let tmp = path.with_extension("drift-tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(&tmp, Some(owner.0), Some(owner.1)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn verify(engine: &berth_engine::Engine, index: Option<usize>) -> DriftReport {
    engine
        .verify(index, progress::silent(), &Cancel::new())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_names_every_difference_exactly() {
    let env = Env::new("drift");
    // v1 plus a symlink and a directory under /usr.
    let mut img = berth_testkit::demo::version(1);
    img.layers.push(Layer::new(vec![
        Entry::Dir("usr".into()),
        Entry::Dir("usr/lib".into()),
        Entry::Symlink("usr/lib/drift-link".into(), "../bin/berth-demo".into()),
        Entry::Dir("usr/share".into()),
        Entry::Dir("usr/share/drift".into()),
        image::file("usr/share/drift/a", "a\n"),
        image::file("usr/share/drift/b", "b\n"),
    ]));
    image::write_layout(&env.layout, &[("drift", &img)]).unwrap();
    env.registry
        .push(&env.layout, "drift", "berth/demo")
        .unwrap();
    let engine = env.install(&env.image("drift")).await;

    let clean = verify(&engine, None);
    assert!(clean.is_clean(), "{clean:#?}");
    assert!(clean.entries_checked > 10, "{clean:#?}");
    // Another deployment, with its own checkout.
    common::stage_switch(&engine, &env.image("2")).await;
    let st = engine.status().unwrap();
    let staged = st
        .status
        .berth
        .deployments
        .iter()
        .find(|d| d.staged)
        .unwrap()
        .index;
    assert!(verify(&engine, Some(staged)).is_clean());

    let usr = env.booted_dir(&engine).join("usr");
    let meta = |p: &str| std::fs::symlink_metadata(usr.join(p)).unwrap();
    let read = |p: &str| std::fs::read(usr.join(p)).unwrap();
    let app = "share/payload/app.bin";
    replace(&usr.join(app), b"changed\n", 0o644, (0, 0));
    let demo = read("bin/berth-demo");
    replace(&usr.join("bin/berth-demo"), &demo, 0o700, (0, 0));
    let base = read("share/payload/base.bin");
    replace(
        &usr.join("share/payload/base.bin"),
        &base,
        0o644,
        (1234, 1234),
    );
    let os_release = read("lib/os-release");
    replace(&usr.join("lib/os-release"), &os_release, 0o644, (0, 0));
    rustix::fs::lsetxattr(
        usr.join("lib/os-release"),
        "trusted.berth-drift",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::fs::remove_file(usr.join("lib/drift-link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", usr.join("lib/drift-link")).unwrap();
    std::fs::remove_dir_all(usr.join("share/drift")).unwrap();
    std::fs::write(usr.join("share/drift"), "now a file\n").unwrap();
    std::fs::remove_file(usr.join("share/doc/obsolete.txt")).unwrap();
    std::fs::write(usr.join("share/added.txt"), "new\n").unwrap();
    std::fs::create_dir_all(usr.join("local-new/x")).unwrap();
    std::fs::write(usr.join("local-new/x/y"), "deep\n").unwrap();
    // Written in place: the hardlinked repository object is damaged too, and fsck says so.
    let initramfs = format!(
        "lib/modules/{}/initramfs.img",
        berth_testkit::demo::KERNEL_VERSION
    );
    assert!(
        meta(&initramfs).nlink() > 1,
        "checkouts hardlink the objects"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(usr.join(&initramfs))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"tampered"))
        .unwrap();

    let r = verify(&engine, None);
    let change = |path: &str, what: &[Aspect]| Change {
        path: format!("/usr/{path}"),
        what: what.to_vec(),
    };
    let mut want = vec![
        change("bin/berth-demo", &[Aspect::Mode]),
        change(&initramfs, &[Aspect::Content]),
        change("lib/drift-link", &[Aspect::SymlinkTarget]),
        change("lib/os-release", &[Aspect::Xattrs]),
        change(app, &[Aspect::Content]),
        change("share/drift", &[Aspect::Type]),
        change("share/payload/base.bin", &[Aspect::Owner]),
    ];
    let mut got = r.changed.clone();
    want.sort_by(|a, b| a.path.cmp(&b.path));
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(got, want, "{r:#?}");
    assert_eq!(
        r.added,
        ["/usr/local-new", "/usr/share/added.txt"],
        "{r:#?}"
    );
    assert_eq!(r.removed, ["/usr/share/doc/obsolete.txt"], "{r:#?}");
    assert_eq!(r.corrupt_objects.len(), 1, "{r:#?}");
    assert!(!r.is_clean());

    // Status keeps the last check of each deployment.
    let st = engine.status().unwrap();
    let booted = st
        .status
        .berth
        .deployments
        .iter()
        .find(|d| d.booted)
        .unwrap();
    let drift = booted.drift.as_ref().expect("recorded");
    assert!(!drift.clean);
    assert_eq!((drift.changed, drift.added, drift.removed), (7, 2, 1));
    assert_eq!(drift.corrupt_objects, 1);

    // The other deployment: only what it shares with the booted one through the damaged
    // object differs; the booted checkout's other changes are not its own.
    let r2 = verify(&engine, Some(staged));
    assert_eq!(
        r2.changed,
        [change(&initramfs, &[Aspect::Content])],
        "{r2:#?}"
    );
    assert!(r2.added.is_empty() && r2.removed.is_empty(), "{r2:#?}");
    assert_eq!(r2.corrupt_objects, r.corrupt_objects);
    // A deployment index that does not exist is refused.
    let e = engine
        .verify(Some(9), progress::silent(), &Cancel::new())
        .unwrap_err();
    assert!(matches!(e, berth_engine::Error::WrongState(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_over_the_bus_signals_drift_and_status_shows_it() {
    let svc = Service::start("drift-bus").await;
    let m = svc.manager().await;

    let done = svc
        .finish(m.verify(options([])).await.unwrap().as_str())
        .await;
    assert!(done.success, "{}", done.error_message);
    assert_eq!(done.result["changed"], serde_json::json!([]));
    let booted = m.booted().await.unwrap();
    assert_eq!(entry(&booted, "drift"), Some("clean".to_string()));

    // Only those polkit allows may run it (it reads all of /usr).
    let out = berth(&svc, Some(users::PLAIN), &["--no-ask-password", "verify"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    let usr = svc.env.booted_dir(&svc.engine()).join("usr");
    std::fs::write(usr.join("share/added.txt"), "new\n").unwrap();
    let conn = svc.connect().await;
    let mut signals = zbus::MessageStream::for_match_rule(
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.berth.Berth1.Manager")
            .unwrap()
            .member("DriftDetected")
            .unwrap()
            .build(),
        &conn,
        None,
    )
    .await
    .unwrap();

    let out = berth(&svc, Some(users::DESKTOP), &["verify"]);
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("differs from its image"), "{text}");
    assert!(text.contains("added    /usr/share/added.txt"), "{text}");

    let msg = tokio::time::timeout(std::time::Duration::from_secs(30), signals.next())
        .await
        .expect("DriftDetected")
        .unwrap()
        .unwrap();
    let (checksum, _serial, report): (String, i32, String) = msg.body().deserialize().unwrap();
    assert_eq!(Some(checksum), entry(&booted, "checksum"));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["added"], serde_json::json!(["/usr/share/added.txt"]));

    let booted = m.booted().await.unwrap();
    assert_eq!(entry(&booted, "drift"), Some("drifted".to_string()));
    let out = berth(&svc, Some(users::PLAIN), &["status"]);
    assert!(
        stdout(&out).contains("/usr differs from the image: 0 changed, 1 added"),
        "{}",
        stdout(&out)
    );
    // The timer's run checks the booted deployment (scheduled-drift-check is on by default).
    let out = berth(&svc, None, &["--quiet", "verify", "--automatic", "--json"]);
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["added"], serde_json::json!(["/usr/share/added.txt"]));
}

/// A string entry of a deployment property (Booted, ...).
fn entry(d: &berth_dbus::Options, key: &str) -> Option<String> {
    d.get(key).map(|v| String::try_from(v.clone()).unwrap())
}

fn status_json(svc: &Service) -> serde_json::Value {
    let out = berth(svc, Some(users::PLAIN), &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn booted_entry(v: &serde_json::Value) -> serde_json::Value {
    v["status"]["berth"]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["booted"] == true)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_transient_is_gone_after_a_reboot() {
    let svc = Service::start("unlock-transient").await;
    let m = svc.manager().await;
    // Only an administrator, asked every time.
    let out = berth(&svc, Some(users::GRANTED), &["--no-ask-password", "unlock"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(booted_entry(&status_json(&svc))["unlocked"].is_null());

    let out = berth(&svc, None, &["unlock"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("until the next boot"),
        "{}",
        stdout(&out)
    );
    let booted = booted_entry(&status_json(&svc));
    assert_eq!(booted["unlocked"], "transient");
    let prop = m.booted().await.unwrap();
    assert_eq!(entry(&prop, "unlocked"), Some("transient".to_string()));
    let out = berth(&svc, Some(users::PLAIN), &["status"]);
    assert!(
        stdout(&out).contains("unlocked (transient)"),
        "{}",
        stdout(&out)
    );
    // Again: already unlocked.
    let out = berth(&svc, None, &["unlock", "--hotfix"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // /usr takes a change; the image's objects do not.
    let usr = svc.env.booted_dir(&svc.engine()).join("usr");
    std::fs::write(usr.join("bin/local-tool"), "#!/bin/sh\n").unwrap();
    std::fs::write(usr.join("lib/os-release"), "NAME=Changed\n").unwrap();
    let out = berth(&svc, None, &["--json", "verify"]);
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["added"], serde_json::json!(["/usr/bin/local-tool"]));
    assert_eq!(r["changed"][0]["path"], "/usr/lib/os-release");
    assert_eq!(r["corruptObjects"], serde_json::json!([]));
    svc.env.fsck();

    // The next boot is the image as built.
    m.reboot(options([])).await.unwrap();
    assert!(!usr.join("bin/local-tool").exists());
    assert!(std::fs::read_to_string(usr.join("lib/os-release"))
        .unwrap()
        .contains("Berth Demo OS 1"));
    assert!(booted_entry(&status_json(&svc))["unlocked"].is_null());
    let out = berth(&svc, None, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_hotfix_survives_a_reboot_until_the_next_update() {
    let svc = Service::start("unlock-hotfix").await;
    let m = svc.manager().await;
    let before = svc.deployments().len();
    let out = berth(&svc, None, &["unlock", "--hotfix"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // ostree's way: the image as built is cloned as the rollback.
    let st = status_json(&svc);
    let deployments = st["status"]["berth"]["deployments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(deployments.len(), before + 1, "{deployments:#?}");
    let booted = booted_entry(&st);
    assert_eq!(booted["unlocked"], "hotfix");
    let rollback = deployments.iter().find(|d| d["rollback"] == true).unwrap();
    assert_eq!(rollback["checksum"], booted["checksum"]);
    assert!(rollback["unlocked"].is_null());

    let usr = svc.env.booted_dir(&svc.engine()).join("usr");
    std::fs::write(usr.join("bin/hotfix"), "fixed\n").unwrap();
    // It survives a reboot.
    m.reboot(options([])).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(usr.join("bin/hotfix")).unwrap(),
        "fixed\n"
    );
    assert_eq!(booted_entry(&status_json(&svc))["unlocked"], "hotfix");
    let out = berth(&svc, Some(users::PLAIN), &["status"]);
    assert!(
        stdout(&out).contains("unlocked (hotfix)"),
        "{}",
        stdout(&out)
    );

    // The next update boots the image as built.
    let done = svc
        .finish(m.update(options([])).await.unwrap().as_str())
        .await;
    assert!(done.success, "{}", done.error_message);
    let v2 = svc.env.image("2").to_string();
    let done = svc
        .finish(m.switch(&v2, options([])).await.unwrap().as_str())
        .await;
    assert!(done.success, "{}", done.error_message);
    m.reboot(options([])).await.unwrap();
    let booted = booted_entry(&status_json(&svc));
    assert_eq!(booted["image"]["version"], "2");
    assert!(booted["unlocked"].is_null());
    let usr2 = svc.env.booted_dir(&svc.engine()).join("usr");
    assert!(!usr2.join("bin/hotfix").exists());
    let out = berth(&svc, None, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    svc.env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_after_a_hotfix_boots_the_image_as_built() {
    let svc = Service::start("unlock-rollback").await;
    let out = berth(&svc, None, &["unlock", "--hotfix"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let usr = svc.env.booted_dir(&svc.engine()).join("usr");
    std::fs::write(usr.join("bin/hotfix"), "fixed\n").unwrap();
    let out = berth(&svc, None, &["rollback", "--reboot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let booted = booted_entry(&status_json(&svc));
    assert!(booted["unlocked"].is_null(), "{booted:#}");
    let usr = svc.env.booted_dir(&svc.engine()).join("usr");
    assert!(!usr.join("bin/hotfix").exists());
    let out = berth(&svc, None, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
