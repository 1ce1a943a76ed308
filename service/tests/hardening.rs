//! The security review's findings (issue 8), each proven on the real path: berthd on a private
//! bus with real polkitd, a real registry, tmpfs sysroots, and real unprivileged users.

mod common;

use berth_dbus::options;
use berth_engine::{progress, Cancel, ImageRef};
use berth_testkit::bus::{as_user, users};
use berth_testkit::proxy::{Fault, Proxy};
use berth_testkit::{demo, image};
use common::service::{berth_call, wait_for_bytes, Service};
use common::Env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every file and directory under `dir` with group or other access, as "mode path" lines.
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!("{mode:o} {}", p.display()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// Item 5: a cancelled download leaves nothing another user can read, and a user cannot hold
/// the cache lock to freeze updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blob_cache_is_root_only_and_its_lock_out_of_users_reach() {
    let svc = Service::start("hardening-cache").await;
    let big = svc.push_big();
    let m = svc.manager().await;
    let path = m.switch(&big, options([])).await.unwrap();
    wait_for_bytes(&svc.transaction(path.as_str()).await).await;
    svc.transaction(path.as_str()).await.cancel().await.unwrap();
    let done = svc.finish(path.as_str()).await;
    assert_eq!(
        done.error_name, "org.berth.Berth1.Error.Cancelled",
        "{done:?}"
    );

    let cache = svc.env.sysroot().join("ostree/berth/cache");
    let partials: Vec<_> = std::fs::read_dir(cache.join("partial")).unwrap().collect();
    assert!(
        !partials.is_empty(),
        "the cancelled download left no partial blob"
    );
    assert_eq!(open_to_others(&cache), Vec::<String>::new());
    let partial = partials[0].as_ref().unwrap().path();
    let read = as_user(users::PLAIN, "cat").arg(&partial).output().unwrap();
    assert!(!read.status.success(), "a user read {}", partial.display());

    // A user tries to hold the lock for a minute, as `flock(1)` would; the lock is not theirs
    // to take, so an update goes through meanwhile.
    let mut holder = as_user(users::PLAIN, "flock")
        .args(["-n", cache.join("lock").to_str().unwrap(), "sleep", "60"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = holder.try_wait().unwrap().is_none();
    let again = m
        .switch(&svc.env.image("2").to_string(), options([]))
        .await
        .unwrap();
    let done = svc.finish(again.as_str()).await;
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!held, "an unprivileged user holds the blob cache lock");
    assert!(done.success, "{done:?}");
    assert_eq!(open_to_others(&cache), Vec::<String>::new());
}

/// `berth-call` as `user`: one Manager call, printing `OK ...` or `ERR <name> <message>`.
fn call_as(svc: &Service, user: &str, method: &str, arg: &str) -> String {
    berth_call(svc, Some(user), false, method, arg)
}

/// `busctl call` on berthd's bus as `user`, without interactive authorization.
fn busctl_as(svc: &Service, user: &str, args: &[&str]) -> std::process::Output {
    as_user(user, "busctl")
        .arg(format!("--address={}", svc.bus.address))
        .arg("--allow-interactive-authorization=no")
        .arg("call")
        .args(args)
        .output()
        .unwrap()
}

/// Item 7: being allowed to start an update is not enough to cancel root's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_someone_elses_work_needs_an_administrator() {
    let svc = Service::start("hardening-cancel").await;
    let m = svc.manager().await;
    // Follow tag 2 through the slow link, then make tag 2 the big image: root's update of it
    // takes a while.
    let slow_v2 = format!("{}/berth/demo:2", svc.slow.addr);
    let path = m.switch(&slow_v2, options([])).await.unwrap();
    assert!(svc.finish(path.as_str()).await.success);
    m.reboot(options([])).await.unwrap();
    svc.push_big();
    retag(&svc, "big", "2");
    let path = m.update(options([])).await.unwrap();
    wait_for_bytes(&svc.transaction(path.as_str()).await).await;
    for user in [users::GRANTED, users::PLAIN] {
        let out = busctl_as(
            &svc,
            user,
            &[
                "org.berth.Berth1",
                path.as_str(),
                "org.berth.Berth1.Transaction",
                "Cancel",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{user} cancelled root's update");
        assert!(
            err.contains("org.berth.berth1.cancel-others"),
            "{user}: {err}"
        );
    }
    let done = svc.finish(path.as_str()).await;
    assert!(done.success, "root's update was stopped: {done:?}");
}

/// Item 8: polkit hears what is approved (operation and image), so a rule can decide on it and
/// a prompt can show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polkit_decides_on_the_image_being_approved() {
    let svc = Service::start("hardening-details").await;
    // tests/polkit/50-berth-tests.rules lets berth-granted switch to tag 3 only.
    let v2 = svc.env.image("2").to_string();
    let v3 = svc.env.image("3").to_string();
    let refused = call_as(&svc, users::GRANTED, "Switch", &v2);
    assert!(
        refused.starts_with("ERR org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
        "{refused}"
    );
    let granted = call_as(&svc, users::GRANTED, "Switch", &v3);
    assert!(
        granted.starts_with("OK ") && granted.ends_with("success"),
        "{granted}"
    );
    let log = svc.log();
    assert!(log.contains(&format!("(\"image\", \"{v3}\")")), "{log}");
}

/// Item 9: a registry's error text reaches the caller, the properties and the journal inert
/// (no terminal escapes, no forged log lines) and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_registry_error_is_printed_inert() {
    let mut svc = Service::start("hardening-text").await;
    let hostile = Proxy::start(&svc.env.registry.addr, Fault::HostileBody(400)).unwrap();
    std::fs::write(
        &svc.config,
        format!("insecure-registries = [\"{}\"]\n", hostile.addr),
    )
    .unwrap();
    svc.kill_and_restart_berthd();
    let out = std::process::Command::new(common::service::berth_bin())
        .args(["switch", &format!("{}/berth/demo:2", hostile.addr)])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let printed = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(
        !printed.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&printed)
    );
    assert!(printed.len() < 4096, "{} bytes printed", printed.len());
    let m = svc.manager().await;
    let message = m.error_message().await.unwrap();
    assert!(message.contains("denied"), "{message}");
    assert!(!message.chars().any(|c| c.is_control()), "{message:?}");
    assert!(message.len() < 2048, "{} bytes", message.len());
    let log = svc.log();
    assert!(!log.contains('\u{1b}'), "escape in the log");
    assert!(
        !log.contains("\nberthd[1]: update finished"),
        "forged log line"
    );
}

/// Item 13: a user cannot pile up registrations, and a client that leaves at once leaves
/// nothing behind to keep berthd alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_registrations_are_bounded_and_never_outlive_their_client() {
    let mut svc = Service::start_with_idle("hardening-clients", 2).await;
    let bin = common::service::berthd_bin().with_file_name("berth-call");
    let out = as_user(users::PLAIN, bin.to_str().unwrap())
        .args(["RegisterMany", "6"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("OK")).count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("ERR org.freedesktop.DBus.Error.LimitsExceeded"),
        "{text}"
    );
    // Clients that register and vanish at once, many times over.
    let out = as_user(users::PLAIN, bin.to_str().unwrap())
        .args(["RegisterAndLeave", "40"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let berthd = svc.berthd.as_mut().unwrap();
    assert!(
        berthd.wait_exit(Duration::from_secs(20)),
        "berthd stayed up for departed clients: {}",
        berthd.log_text()
    );
}

/// Item 13: the bus itself refuses anything but Berth's interfaces and the standard ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_policy_admits_only_berths_interfaces() {
    let svc = Service::start("hardening-policy").await;
    let other = busctl_as(
        &svc,
        users::PLAIN,
        &[
            "org.berth.Berth1",
            "/org/berth/Berth1",
            "org.example.NotBerth",
            "Anything",
        ],
    );
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        err.contains("Access denied") || err.contains("AccessDenied"),
        "{err}"
    );
    let props = busctl_as(
        &svc,
        users::PLAIN,
        &[
            "org.berth.Berth1",
            "/org/berth/Berth1",
            "org.freedesktop.DBus.Properties",
            "Get",
            "ss",
            "org.berth.Berth1.Manager",
            "State",
        ],
    );
    assert!(props.status.success(), "{props:?}");
}

/// Points registry tag `to` of the demo image at the image tagged `from`.
fn retag(svc: &Service, from: &str, to: &str) {
    let reg = &svc.env.registry.addr;
    let st = std::process::Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{reg}/berth/demo:{from}"))
        .arg(format!("docker://{reg}/berth/demo:{to}"))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Pushes demo version 2 rebuilt with a created time years before the others, as tag "old".
fn push_old(svc: &Service) {
    let mut old = demo::version(2);
    old.created = "2020-01-01T00:00:00Z".into();
    image::write_layout(&svc.env.layout, &[("old", &old)]).unwrap();
    svc.env
        .registry
        .push(&svc.env.layout, "old", "berth/demo")
        .unwrap();
}

async fn update_with(svc: &Service, opts: berth_dbus::Options) -> common::service::Finished {
    let path = svc.manager().await.update(opts).await.unwrap();
    svc.finish(path.as_str()).await
}

/// Item 3: an image older than the booted one is never staged by a routine or automatic
/// update; going back is an administrator's decision (root, or the switch action).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_image_is_staged_only_with_an_administrators_approval() {
    let svc = Service::start("hardening-downgrade").await;
    push_old(&svc);
    retag(&svc, "old", "1");
    let m = svc.manager().await;
    let routine = call_as(&svc, users::GRANTED, "Update", "");
    assert!(
        routine.ends_with("org.berth.Berth1.Error.Downgrade"),
        "{routine}"
    );
    let automatic = svc.automatic_apply().await;
    assert_eq!(
        automatic.error_name, "org.berth.Berth1.Error.Downgrade",
        "{automatic:?}"
    );
    assert!(m.staged().await.unwrap().is_empty());

    // Root may download it; a user may not stage that download without an administrator.
    let root = update_with(&svc, options([("download-only", true.into())])).await;
    assert!(root.success, "{root:?}");
    assert!(!m.cached_update().await.unwrap().is_empty());
    let bin = common::service::berthd_bin().with_file_name("berth-call");
    let out = as_user(users::GRANTED, bin.to_str().unwrap())
        .args(["--wait", "UpdateFromDownloaded"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("ERR org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
        "{text}"
    );
    assert!(
        m.staged().await.unwrap().is_empty(),
        "the older download was staged"
    );
    let root = update_with(&svc, options([("from-downloaded", true.into())])).await;
    assert!(root.success, "{root:?}");
}

/// Item 3: a download is dropped once something else is staged: it cannot be staged later
/// over what the administrator chose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_goes_stale_when_something_else_is_staged() {
    let svc = Service::start("hardening-stale").await;
    retag(&svc, "2", "1");
    let m = svc.manager().await;
    let down = update_with(&svc, options([("download-only", true.into())])).await;
    assert!(down.success, "{down:?}");
    assert!(!m.cached_update().await.unwrap().is_empty());
    let path = m
        .switch(&svc.env.image("3").to_string(), options([]))
        .await
        .unwrap();
    assert!(svc.finish(path.as_str()).await.success);
    assert!(
        m.cached_update().await.unwrap().is_empty(),
        "the download outlived the switch"
    );
    let again = call_as(&svc, users::GRANTED, "UpdateFromDownloaded", "");
    assert!(
        again.ends_with("org.berth.Berth1.Error.WrongState"),
        "{again}"
    );
    let staged = m.staged().await.unwrap();
    let version: String = staged
        .get("version")
        .map(|v| v.try_clone().unwrap().try_into().unwrap())
        .unwrap_or_default();
    assert_eq!(version, "3");
}

/// Item 2: a layout that names one digest and holds another image is refused, and an image
/// stored under a digest it does not have is never reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_source_can_plant_an_image_under_another_digest() {
    let env = Env::new("hardening-plant");
    let engine = env.install(&env.image("1")).await;
    let v2_digest = env.written[1].manifest_digest.clone();
    let v2_hex = v2_digest.trim_start_matches("sha256:");
    // A layout holding v3 whose index.json says it is v2.
    let liar = env.dir.join("liar");
    let w = image::write_layout(&liar, &[("x", &demo::version(3))]).unwrap();
    let v3_hex = w[0]
        .manifest_digest
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::copy(
        liar.join("blobs/sha256").join(&v3_hex),
        liar.join("blobs/sha256").join(v2_hex),
    )
    .unwrap();
    let index = std::fs::read_to_string(liar.join("index.json")).unwrap();
    std::fs::write(liar.join("index.json"), index.replace(&v3_hex, v2_hex)).unwrap();
    let lying = ImageRef::parse(&format!("oci:{}:x", liar.display())).unwrap();
    let err = engine
        .switch(&lying, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DigestMismatch", "{err}");

    // What such a layout could have left with an older Berth: v3 stored as v2.
    let v3 = engine
        .pull(&env.image("3"), progress::silent(), &Cancel::new())
        .await
        .unwrap();
    let repo = env.sysroot().join("ostree/repo");
    let st = std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["refs", "--force", "--create"])
        .arg(berth_engine::import::image_ref(&v2_digest))
        .arg(&v3.commit)
        .status()
        .unwrap();
    assert!(st.success());
    let by_digest =
        ImageRef::parse(&format!("{}/berth/demo@{v2_digest}", env.registry.addr)).unwrap();
    engine
        .switch(&by_digest, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    engine.reboot().unwrap();
    assert_eq!(common::booted_version(&engine), "2");
    env.fsck();
}

/// Item 1: a layout a user can write is not followed by routine or automatic updates; an
/// administrator may still choose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_a_user_can_write_needs_an_administrator() {
    let svc = Service::start("hardening-layout").await;
    let usb = svc.env.dir.join("usb");
    image::write_layout(&usb, &[("2", &demo::version(2))]).unwrap();
    let st = std::process::Command::new("chown")
        .args(["-R", users::PLAIN])
        .arg(&usb)
        .status()
        .unwrap();
    assert!(st.success());
    let m = svc.manager().await;
    // The administrator (root) chooses it, and it boots.
    let layout = format!("oci:{}:2", usb.display());
    let path = m.switch(&layout, options([])).await.unwrap();
    let done = svc.finish(path.as_str()).await;
    assert!(done.success, "{done:?}");
    m.reboot(options([])).await.unwrap();
    // A routine update of it needs what a switch needs.
    let routine = call_as(&svc, users::GRANTED, "Update", "");
    assert!(
        routine.starts_with("ERR org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
        "{routine}"
    );
    // Nobody approves for the timer.
    let automatic = svc.automatic_apply().await;
    assert_eq!(
        automatic.error_name, "org.berth.Berth1.Error.NotTrusted",
        "{automatic:?}"
    );
    assert!(automatic.error_message.contains("uid"), "{automatic:?}");
}

/// Item 1: layout files are read as they are: no links followed (to /dev/zero, to root's
/// secrets), no FIFOs waited on, nothing past the declared size; even for an administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_files_are_read_without_links_fifos_or_excess() {
    let env = Env::new("hardening-layout-files");
    let engine = env.install(&env.image("1")).await;
    /// Spoils a layout: gets the last layer's blob and the layout directory.
    type Spoil = fn(&Path, &str);
    let cases: [(&str, Spoil); 4] = [
        ("link to /dev/zero", |blob, _| {
            std::fs::remove_file(blob).unwrap();
            std::os::unix::fs::symlink("/dev/zero", blob).unwrap();
        }),
        ("fifo", |blob, _| {
            std::fs::remove_file(blob).unwrap();
            let st = std::process::Command::new("mkfifo")
                .arg(blob)
                .status()
                .unwrap();
            assert!(st.success());
        }),
        ("longer than declared", |blob, _| {
            let mut f = std::fs::OpenOptions::new().append(true).open(blob).unwrap();
            std::io::Write::write_all(&mut f, &[0u8; 4096]).unwrap();
        }),
        ("linked index.json", |_, layout| {
            let index = Path::new(layout).join("index.json");
            let real = Path::new(layout).join("index.real.json");
            std::fs::rename(&index, &real).unwrap();
            std::os::unix::fs::symlink(&real, &index).unwrap();
        }),
    ];
    for (i, (what, spoil)) in cases.into_iter().enumerate() {
        let dir = env.dir.join(format!("spoiled-{i}"));
        let w = image::write_layout(&dir, &[("2", &demo::version(2))]).unwrap();
        let layer = w[0]
            .layers
            .last()
            .unwrap()
            .0
            .trim_start_matches("sha256:")
            .to_string();
        spoil(&dir.join("blobs/sha256").join(layer), dir.to_str().unwrap());
        let image = ImageRef::parse(&format!("oci:{}:2", dir.display())).unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            engine.switch(&image, false, progress::silent(), &Cancel::new()),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: the switch hung"));
        let err = result.expect_err(what);
        let expected = if what == "longer than declared" {
            "DigestMismatch"
        } else {
            "NotTrusted"
        };
        assert_eq!(err.name(), expected, "{what}: {err}");
        assert!(engine.status().unwrap().status.staged.is_none(), "{what}");
    }
    env.fsck();
}

/// Writes an OCI layout by hand, for images no builder would make: `layers` are uncompressed
/// tar blobs, listed `repeat` times over; the manifest carries `pad` bytes of annotation.
fn raw_layout(dir: &Path, layers: &[Vec<u8>], repeat: usize, pad: usize) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> serde_json::Value {
        let digest = berth_engine::oci::sha256_digest(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        serde_json::json!({ "digest": digest, "size": bytes.len() })
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let mut d = put(layer);
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
        diff_ids.push(d["digest"].clone());
        descs.push(d);
    }
    let descs: Vec<_> = descs.iter().cycle().take(layers.len() * repeat).collect();
    let diff_ids: Vec<_> = diff_ids
        .iter()
        .cycle()
        .take(layers.len() * repeat)
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-06-01T00:00:00Z",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let mut config_desc = put(config.to_string().as_bytes());
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": descs,
        "annotations": { "pad": "x".repeat(pad) },
    });
    let mut m = put(manifest.to_string().as_bytes());
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    m["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": "t" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [m] });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// `berthd switch IMAGE` as a process of its own: exit code, stderr and peak RSS in KiB.
/// A small Python parent measures it: a child forked from this (large) test process would
/// count the test's own memory as its peak.
fn berthd_switch(env: &Env, config: &Path, image: &str) -> (i32, String, i64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:])\n\
        print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let out = std::process::Command::new("python3")
        .args(["-c", MEASURE])
        .arg(common::service::berthd_bin())
        .arg(format!("--sysroot={}", env.sysroot().display()))
        .arg(format!("--config={}", config.display()))
        .args(["switch", image])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    let (code, peak) = last.split_once(' ').expect("exit code and peak RSS");
    (
        code.parse().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        peak.trim().parse().unwrap(),
    )
}

/// A tar holding one PAX header that claims `claimed` bytes, then a few KiB of it.
fn huge_pax_header(claimed: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeader").unwrap();
    h.set_size(claimed);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 8192));
    bytes
}

/// Item 6: a compression bomb, a huge PAX header, 10,000 layers and an oversized manifest
/// (from a layout, and an endless one from a registry) are each refused with a named error,
/// early and in bounded memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_images_hit_the_limits_in_bounded_memory() {
    let env = Env::new("hardening-limits");
    env.install(&env.image("1")).await;
    let endless = Proxy::start(&env.registry.addr, Fault::EndlessManifest).unwrap();
    let config = env.dir.join("limits.toml");
    // A low cap, so the bomb needs only a 64 MiB expansion to prove it.
    std::fs::write(
        &config,
        format!(
            "insecure-registries = [\"{}\"]\n[limits]\nmax-layer-bytes = 16777216\n",
            endless.addr
        ),
    )
    .unwrap();
    let bomb_dir = env.dir.join("bomb");
    let mut bomb = demo::version(2);
    bomb.layers.push(image::Layer::new(vec![image::file(
        "usr/share/zeros",
        vec![0u8; 64 << 20],
    )]));
    image::write_layout(&bomb_dir, &[("t", &bomb)]).unwrap();
    let dir = |name: &str| env.dir.join(name);
    raw_layout(&dir("pax"), &[huge_pax_header(8 << 30)], 1, 0);
    let tiny = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", &b"x"[..]).unwrap();
        b.into_inner().unwrap()
    };
    raw_layout(&dir("layers"), std::slice::from_ref(&tiny), 10_000, 0);
    raw_layout(
        &dir("big-manifest"),
        std::slice::from_ref(&tiny),
        1,
        5 << 20,
    );
    let layout = |dir: PathBuf| format!("oci:{}:t", dir.display());
    let cases = [
        (
            "compression bomb",
            layout(bomb_dir.clone()),
            "HostileLayer",
            "max-layer-bytes",
        ),
        (
            "8 GiB PAX header",
            layout(dir("pax")),
            "HostileLayer",
            "extension header",
        ),
        (
            "10,000 layers",
            layout(dir("layers")),
            "BadManifest",
            "max-layers",
        ),
        (
            "5 MiB manifest",
            layout(dir("big-manifest")),
            "BadManifest",
            "too large",
        ),
        (
            "endless manifest from a registry",
            format!("{}/berth/demo:2", endless.addr),
            "BadManifest",
            "larger than",
        ),
    ];
    for (what, image, name, says) in cases {
        let (code, err, peak_kib) = berthd_switch(&env, &config, &image);
        println!(
            "{what}: exit {code}, peak RSS {:.1} MiB",
            peak_kib as f64 / 1024.0
        );
        assert_eq!(code, 4, "{what}: {err}");
        assert!(err.contains(&format!("Error.{name}")), "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
        assert!(peak_kib < 256 << 10, "{what}: peak RSS {peak_kib} KiB");
    }
    let engine = berth_engine::Engine::open(&env.sysroot(), env.config.clone()).unwrap();
    assert!(engine.status().unwrap().status.staged.is_none());
    env.fsck();
}

/// Item 6: only the extended attributes on Berth's allow-list reach the deployed tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allow_listed_extended_attributes_are_deployed() {
    let env = Env::new("hardening-xattrs");
    let engine = env.install(&env.image("1")).await;
    let mut img = demo::version(2);
    let caps = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        .to_vec();
    img.layers
        .push(image::Layer::new(vec![image::Entry::XattrFile(
            "usr/bin/pinger".into(),
            b"#!/bin/sh\n".to_vec(),
            0o755,
            vec![
                ("security.capability".into(), caps.clone()),
                ("user.berth.note".into(), b"kept".to_vec()),
                ("trusted.berth.sneaky".into(), b"dropped".to_vec()),
                ("security.berth.unknown".into(), b"dropped".to_vec()),
            ],
        )]));
    let layout = env.dir.join("xattrs");
    image::write_layout(&layout, &[("t", &img)]).unwrap();
    let image = ImageRef::parse(&format!("oci:{}:t", layout.display())).unwrap();
    engine
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    engine.reboot().unwrap();
    let pinger = env.booted_dir(&engine).join("usr/bin/pinger");
    assert_eq!(common::xattr(&pinger, "security.capability"), Some(caps));
    assert_eq!(
        common::xattr(&pinger, "user.berth.note").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(common::xattr(&pinger, "trusted.berth.sneaky"), None);
    assert_eq!(common::xattr(&pinger, "security.berth.unknown"), None);
    env.fsck();
}

fn available(p: &Path) -> u64 {
    berth_engine::space::available(p).unwrap()
}

/// Item 12: the whole need of an update (download, import, deployment) is checked before the
/// first byte is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_cannot_be_deployed_downloads_nothing() {
    let env = Env::new("hardening-space");
    let root = env.dir.join("small");
    common::small_fs(&root, 256);
    let sysroot = root.join("sysroot");
    env.install_at(&sysroot, &env.image("1")).await.unwrap();
    let proxy = Proxy::start(&env.registry.addr, Fault::Throttle(1 << 30)).unwrap();
    let mut big = demo::version(2);
    big.layers.push(image::Layer::new(vec![image::file(
        "usr/share/big.bin",
        image::noise(3, 24 << 20),
    )]));
    let written = image::write_layout(&env.layout, &[("big", &big)]).unwrap();
    env.registry.push(&env.layout, "big", "berth/demo").unwrap();
    // The layers v1 lacks (v2's own and the big one): room for their download and import
    // (the cache copy and twice their size unpacked), the reserve and 4 MiB; not for the
    // deployment on top.
    let new_layers: u64 = written[0].layers[1..].iter().map(|(_, size)| size).sum();
    let target = 3 * new_layers + (8 << 20) + (4 << 20);
    let filler = root.join("filler");
    let st = std::process::Command::new("fallocate")
        .args(["-l", &(available(&root) - target).to_string()])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(st.success());
    let config = berth_engine::Config {
        insecure_registries: vec![proxy.addr.clone()],
        ..Default::default()
    };
    let engine = berth_engine::Engine::open(&sysroot, config).unwrap();
    let image = ImageRef::parse(&format!("{}/berth/demo:big", proxy.addr)).unwrap();
    let err = engine
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NoSpace", "{err}");
    // The config (a few hundred bytes) tells which layers are needed; no layer was fetched.
    let fetched = proxy.blob_bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        fetched < 4096,
        "{fetched} blob bytes were fetched before the lack of space was found: {err}"
    );
    assert!(engine.status().unwrap().status.staged.is_none());
}

/// Item 12: an image that expands far beyond its estimate (128 MiB of zeros, compressed to
/// almost nothing) is stopped before its filesystem is full, with a word on what was kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_too_big_for_its_filesystem_stops_short_of_filling_it() {
    let env = Env::new("hardening-install-space");
    let root = env.dir.join("small");
    common::small_fs(&root, 100);
    let mut zeros = demo::version(2);
    zeros.layers.push(image::Layer::new(vec![image::file(
        "usr/share/zeros",
        vec![0u8; 128 << 20],
    )]));
    image::write_layout(&env.layout, &[("zeros", &zeros)]).unwrap();
    let image = ImageRef::parse(&format!("oci:{}:zeros", env.layout.display())).unwrap();
    let err = env
        .install_at(&root.join("sysroot"), &image)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NoSpace", "{err}");
    assert!(err.to_string().contains("berth cleanup"), "{err}");
    let left = available(&root);
    assert!(
        left >= 4 << 20,
        "only {left} bytes left: the filesystem was filled"
    );
}

/// Item 6: the objects of a layer whose digest fails stay out of reach: nothing of it (here a
/// setuid-root file) ever appears in the repository, and its staging is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_an_unverified_layer_never_reach_the_repository() {
    let env = Env::new("hardening-staging");
    let engine = env.install(&env.image("1")).await;
    let repo = env.sysroot().join("ostree/repo");
    let objects_before = count_files(&repo.join("objects"));
    let mut img = demo::version(2);
    img.layers.push(image::Layer::new(vec![image::Entry::File(
        "usr/bin/su-from-nowhere".into(),
        b"#!/bin/sh\necho owned\n".to_vec(),
        0o4755,
    )]));
    img.bad_diff_id = true;
    let layout = env.dir.join("unverified");
    image::write_layout(&layout, &[("t", &img)]).unwrap();
    let image = ImageRef::parse(&format!("oci:{}:t", layout.display())).unwrap();
    let err = engine
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DigestMismatch", "{err}");
    let setuid = find_files(&repo.join("objects"), |m| m & 0o4000 != 0);
    assert_eq!(
        setuid,
        Vec::<String>::new(),
        "setuid objects of an unverified layer"
    );
    // The other layers' imports may still be finishing in the background; each removes (or
    // publishes) its staging when it ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let staging = find_files(&repo.join("tmp"), |_| true);
        if staging.iter().all(|p| !p.contains("berth-layer-")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "staging left behind: {staging:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let setuid = find_files(&repo.join("objects"), |m| m & 0o4000 != 0);
    assert_eq!(
        setuid,
        Vec::<String>::new(),
        "setuid objects of an unverified layer"
    );
    // v2's own layer (verified) may have arrived; the bad one added nothing.
    assert!(count_files(&repo.join("objects")) >= objects_before);
    env.fsck();
}

fn count_files(dir: &Path) -> usize {
    find_files(dir, |_| true).len()
}

/// Paths of the files (not directories) under `dir` whose mode passes `keep`.
fn find_files(dir: &Path, keep: fn(u32) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if keep(meta.permissions().mode()) {
            out.push(p.display().to_string());
        }
    }
    out
}

/// A layer that fails while another is still downloading ends the pull; the other layer's
/// import, which follows its download, must end too instead of waiting for bytes that will
/// never come (a thread blocked for ever, and a berthd that could not shut down).
#[test]
fn a_failed_layer_leaves_no_import_waiting_for_ever() {
    // A runtime of its own, shut down without waiting: a stuck import fails this test instead
    // of hanging it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(failed_layer_scenario());
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn failed_layer_scenario() {
    let env = Env::new("hardening-abandon");
    let engine = env.install(&env.image("1")).await;
    let slow = Proxy::start(
        &env.registry.addr,
        Fault::Throttle(common::service::SLOW_RATE),
    )
    .unwrap();
    let mut img = demo::version(2);
    img.layers.push(image::Layer::new(vec![image::file(
        "usr/share/big.bin",
        image::noise(5, 24 << 20),
    )]));
    img.layers
        .push(image::Layer::new(vec![image::file("usr/share/bad", "x")]));
    img.bad_diff_id = true;
    image::write_layout(&env.layout, &[("abandon", &img)]).unwrap();
    env.registry
        .push(&env.layout, "abandon", "berth/demo")
        .unwrap();
    let config = berth_engine::Config {
        insecure_registries: vec![slow.addr.clone()],
        ..Default::default()
    };
    let engine2 = berth_engine::Engine::open(&env.sysroot(), config).unwrap();
    let image = ImageRef::parse(&format!("{}/berth/demo:abandon", slow.addr)).unwrap();
    let err = engine2
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DigestMismatch", "{err}");
    let repo = env.sysroot().join("ostree/repo");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while find_files(&repo.join("tmp"), |_| true)
        .iter()
        .any(|p| p.contains("berth-layer-"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "an import is still waiting for its abandoned download"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(engine.status().unwrap().status.staged.is_none());
}
