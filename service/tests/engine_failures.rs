//! Bad input and failures: each gives a precise error, and the booted and previous
//! deployments stay untouched and `ostree fsck` stays clean.

mod common;

use berth_engine::{progress, Cancel, Config, Engine, ImageRef, UpdateOutcome};
use berth_testkit::demo;
use berth_testkit::image::{self, file, Entry, Image, Layer};
use berth_testkit::proxy::{Fault, Proxy};
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

/// Installs v1 and returns what must not change.
async fn installed(env: &Env) -> (Engine, Vec<String>) {
    let engine = env.install(&env.image("1")).await;
    let before = snapshot(&engine);
    (engine, before)
}

fn snapshot(engine: &Engine) -> Vec<String> {
    engine
        .status()
        .unwrap()
        .status
        .berth
        .deployments
        .iter()
        .map(|d| {
            format!(
                "{} {} {} booted={}",
                d.stateroot, d.checksum, d.deploy_serial, d.booted
            )
        })
        .collect()
}

fn assert_untouched(env: &Env, engine: &Engine, before: &[String]) {
    assert_eq!(snapshot(engine), before, "deployments changed");
    assert!(env.booted_dir(engine).join("usr/bin/berth-demo").exists());
    env.fsck();
}

fn hostile(extra: Vec<Entry>) -> Image {
    let mut layer = demo::app_layer(9);
    layer.entries.extend(extra);
    Image::new("9", vec![demo::base_layer(), layer])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_broken_layers_are_rejected_precisely() {
    let env = Env::new("hostile");
    let (engine, before) = installed(&env).await;
    let no_kernel = Image::new(
        "9",
        vec![Layer::new(vec![
            Entry::Dir("usr".into()),
            file("usr/hello", "x"),
        ])],
    );
    let mut bad_diff = demo::version(9);
    bad_diff.bad_diff_id = true;
    let cases: Vec<(&str, Image, &str, &str)> = vec![
        (
            "dotdot",
            hostile(vec![Entry::RawFile(
                b"usr/../../etc/evil".to_vec(),
                b"x".to_vec(),
            )]),
            "HostileLayer",
            "escapes the root",
        ),
        (
            "absolute",
            hostile(vec![Entry::RawFile(b"/etc/evil".to_vec(), b"x".to_vec())]),
            "HostileLayer",
            "absolute",
        ),
        (
            "symlink-escape",
            hostile(vec![
                Entry::RawSymlink(b"usr/evil".to_vec(), b"/etc".to_vec()),
                Entry::RawFile(b"usr/evil/passwd".to_vec(), b"x".to_vec()),
            ]),
            "HostileLayer",
            "through symlink",
        ),
        (
            "hardlink-escape",
            hostile(vec![Entry::Hardlink(
                "usr/evil".into(),
                "../../etc/shadow".into(),
            )]),
            "HostileLayer",
            "escapes the root",
        ),
        (
            "device",
            hostile(vec![Entry::CharDevice("usr/null".into())]),
            "HostileLayer",
            "device node",
        ),
        ("no-kernel", no_kernel, "NotBootable", "no kernel"),
        ("bad-diff-id", bad_diff, "DigestMismatch", "diff_id"),
    ];
    for (name, img, error, detail) in cases {
        let layout = env.dir.join(format!("bad-{name}"));
        image::write_layout(&layout, &[("bad", &img)]).unwrap();
        let r = ImageRef::parse(&format!("oci:{}:bad", layout.display())).unwrap();
        let err = engine
            .switch(&r, false, progress::silent(), &Cancel::new())
            .await
            .expect_err(name);
        assert_eq!(err.name(), error, "{name}: {err}");
        assert!(err.to_string().contains(detail), "{name}: {err}");
        assert_untouched(&env, &engine, &before);
    }

    // A blob whose bytes do not match its digest (a corrupt download source).
    let layout = env.dir.join("corrupt");
    let w = image::write_layout(&layout, &[("c", &demo::version(8))]).unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(w[0].layers[1].0.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let r = ImageRef::parse(&format!("oci:{}:c", layout.display())).unwrap();
    let err = engine
        .switch(&r, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DigestMismatch", "{err}");
    assert_untouched(&env, &engine, &before);

    // A truncated layer: the compressed stream ends early.
    let tar = image::layer_tar(&demo::app_layer(7).entries).unwrap();
    let cut = &tar[..tar.len() / 2];
    let mut gz = flate2_gzip(cut);
    gz.truncate(gz.len() - 10);
    let err = import_raw_layer(&env, &engine, gz, &tar).await;
    assert!(
        matches!(err.name(), "CorruptLayer" | "DigestMismatch"),
        "{err}"
    );
    assert_untouched(&env, &engine, &before);

    // A malformed manifest.
    let layout = env.dir.join("malformed");
    image::write_layout(&layout, &[("m", &demo::version(6))]).unwrap();
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = idx["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let junk = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":"nope"}"#;
    let jd = image::sha256(junk);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(jd.trim_start_matches("sha256:")),
        junk,
    )
    .unwrap();
    let fixed = std::fs::read_to_string(layout.join("index.json"))
        .unwrap()
        .replace(&mdigest, jd.trim_start_matches("sha256:"));
    std::fs::write(layout.join("index.json"), fixed).unwrap();
    let r = ImageRef::parse(&format!("oci:{}:m", layout.display())).unwrap();
    let err = engine
        .switch(&r, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "BadManifest", "{err}");
    assert_untouched(&env, &engine, &before);
}

fn flate2_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Writes an image whose second layer blob is `blob`, declared with the diff-id of `tar`.
async fn import_raw_layer(
    env: &Env,
    engine: &Engine,
    blob: Vec<u8>,
    tar: &[u8],
) -> berth_engine::Error {
    let layout = env.dir.join("raw");
    let w = image::write_layout(&layout, &[("r", &demo::version(5))]).unwrap();
    let bdigest = image::sha256(&blob);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(bdigest.trim_start_matches("sha256:")),
        &blob,
    )
    .unwrap();
    // Rewrite config and manifest to point at the raw blob.
    let mpath = layout
        .join("blobs/sha256")
        .join(w[0].manifest_digest.trim_start_matches("sha256:"));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let cpath = layout.join("blobs/sha256").join(
        m["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cpath).unwrap()).unwrap();
    c["rootfs"]["diff_ids"][1] = image::sha256(tar).into();
    let cb = serde_json::to_vec(&c).unwrap();
    let cd = image::sha256(&cb);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(cd.trim_start_matches("sha256:")),
        &cb,
    )
    .unwrap();
    m["config"]["digest"] = cd.into();
    m["config"]["size"] = cb.len().into();
    m["layers"][1]["digest"] = bdigest.into();
    m["layers"][1]["size"] = blob.len().into();
    let mb = serde_json::to_vec(&m).unwrap();
    let md = image::sha256(&mb);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(md.trim_start_matches("sha256:")),
        &mb,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mb.len(), "annotations": {"org.opencontainers.image.ref.name": "r"}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let r = ImageRef::parse(&format!("oci:{}:r", layout.display())).unwrap();
    engine
        .switch(&r, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err()
}

fn engine_via(env: &Env, proxy: &Proxy) -> (Engine, ImageRef) {
    let config = Config {
        insecure_registries: vec![proxy.addr.clone()],
        retries: 3,
        ..Config::default()
    };
    let engine = Engine::open(&env.sysroot(), config).unwrap();
    (
        engine,
        ImageRef::parse(&format!("{}/berth/demo:2", proxy.addr)).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_failures_retry_resume_or_fail_clearly() {
    let env = Env::new("registry");
    let (engine, before) = installed(&env).await;
    let app_v2 = env.written[1].layers[1].1 as usize;

    // Unknown image, 401, 403: final, named errors.
    let missing = ImageRef::parse(&format!("{}/berth/nope:1", env.registry.addr)).unwrap();
    assert_eq!(
        engine
            .switch(&missing, false, progress::silent(), &Cancel::new())
            .await
            .unwrap_err()
            .name(),
        "ImageNotFound"
    );
    for (code, name) in [(401, "RegistryUnauthorized"), (403, "RegistryForbidden")] {
        let proxy = Proxy::start(&env.registry.addr, Fault::Status(code)).unwrap();
        let (e, img) = engine_via(&env, &proxy);
        assert_eq!(
            e.switch(&img, false, progress::silent(), &Cancel::new())
                .await
                .unwrap_err()
                .name(),
            name
        );
    }
    // A registry that always fails with 500 on blobs: a Network error after the retries.
    let proxy = Proxy::start(&env.registry.addr, Fault::ServerError(1000)).unwrap();
    let (e, img) = engine_via(&env, &proxy);
    assert_eq!(
        e.switch(&img, false, progress::silent(), &Cancel::new())
            .await
            .unwrap_err()
            .name(),
        "Network"
    );
    // A corrupted blob in transit: DigestMismatch, and nothing is kept.
    let proxy = Proxy::start(&env.registry.addr, Fault::Corrupt).unwrap();
    let (e, img) = engine_via(&env, &proxy);
    assert_eq!(
        e.switch(&img, false, progress::silent(), &Cancel::new())
            .await
            .unwrap_err()
            .name(),
        "DigestMismatch"
    );
    assert_untouched(&env, &engine, &before);
    let cache = env.sysroot().join("ostree/berth/cache");
    assert_eq!(
        std::fs::read_dir(cache.join("sha256")).unwrap().count()
            + std::fs::read_dir(cache.join("partial")).unwrap().count(),
        0
    );

    // Two 500s, then fine: retried with backoff.
    let proxy = Proxy::start(&env.registry.addr, Fault::ServerError(2)).unwrap();
    let (e, img) = engine_via(&env, &proxy);
    let out = e
        .switch(&img, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }));
    e.rollback().unwrap(); // discard the staged v2 again
    e.cleanup().unwrap();

    // A connection dropped mid-blob: the retry resumes from where it stopped.
    let proxy = Proxy::start(
        &env.registry.addr,
        Fault::Cut {
            times: 1,
            after: app_v2 / 2,
        },
    )
    .unwrap();
    let (e, img) = engine_via(&env, &proxy);
    let out = e
        .switch(&img, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    let UpdateOutcome::Staged { pulled } = out else {
        panic!()
    };
    assert_eq!(pulled.downloaded_bytes, app_v2 as u64);
    let served = proxy.blob_bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        served < app_v2 + app_v2 / 4,
        "resumed instead of starting over: served {served} for a {app_v2}-byte blob"
    );
    e.reboot().unwrap();
    assert_eq!(booted_version(&e), "2");
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_reported_before_anything_breaks() {
    let env = Env::new("diskfull");
    let small = env.dir.join("small");
    common::small_fs(&small, 24);
    let sysroot = small.join("sysroot");
    env.install_at(&sysroot, &env.image("1")).await.unwrap();
    let engine = Engine::open(&sysroot, env.config.clone()).unwrap();
    let before = snapshot(&engine);
    // Leave less room than the update needs.
    let avail = berth_engine::space::available(&small).unwrap();
    std::fs::write(
        small.join("filler"),
        vec![0u8; (avail - 1024 * 1024) as usize],
    )
    .unwrap();
    let err = engine
        .switch(&env.image("2"), false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NoSpace", "{err}");
    assert_eq!(snapshot(&engine), before);
    let out = Command::new("ostree")
        .arg("fsck")
        .arg(format!("--repo={}", sysroot.join("ostree/repo").display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    // Free the space and the same update goes through.
    std::fs::remove_file(small.join("filler")).unwrap();
    assert!(matches!(
        engine
            .switch(&env.image("2"), false, progress::silent(), &Cancel::new())
            .await
            .unwrap(),
        UpdateOutcome::Staged { .. }
    ));
    let _ = Command::new("umount").arg("-l").arg(&small).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_again_and_again_each_resume_leaves_a_consistent_sysroot() {
    let env = Env::new("kill");
    // A larger update so kills land in download, import and deploy.
    let mut big = demo::version(4);
    big.layers.push(Layer::new(
        (0..400)
            .map(|i| {
                Entry::File(
                    format!("usr/share/many/f{i}"),
                    image::noise(1000 + i, 4096),
                    0o644,
                )
            })
            .collect::<Vec<_>>(),
    ));
    big.layers[2]
        .entries
        .insert(0, Entry::Dir("usr/share/many".into()));
    big.layers[2]
        .entries
        .insert(0, Entry::Dir("usr/share".into()));
    big.layers[2].entries.insert(0, Entry::Dir("usr".into()));
    big.layers.push(Layer::new(vec![
        Entry::Dir("usr".into()),
        Entry::Dir("usr/share".into()),
        Entry::File("usr/share/big.bin".into(), image::noise(7, 6 << 20), 0o644),
    ]));
    image::write_layout(&env.layout, &[("big", &big)]).unwrap();
    env.registry.push(&env.layout, "big", "berth/demo").unwrap();
    let (engine, before) = installed(&env).await;
    let config = env.dir.join("berth.toml");
    std::fs::write(
        &config,
        format!("insecure-registries = [\"{}\"]\n", env.registry.addr),
    )
    .unwrap();
    let berthd = env!("CARGO_BIN_EXE_berthd");
    let switch = || {
        let mut cmd = Command::new(berthd);
        cmd.arg("--sysroot")
            .arg(env.sysroot())
            .arg("--config")
            .arg(&config)
            .args(["switch", &env.image("big").to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    // Time one whole switch, then forget what it pulled (with the engine's own discard and
    // cleanup, as a user would), so the rounds start from nothing.
    let started = std::time::Instant::now();
    assert!(switch().status().unwrap().success());
    let span = started.elapsed();
    engine.discard_staged().unwrap();
    engine.cleanup().unwrap();
    // Each round resumes from what the last kill left, with nothing cleaned up in between,
    // and is killed a little later than the last, until a switch finishes by itself.
    let mut delay = span / 16;
    let mut seed: u64 = 0x5eed;
    let mut kills = 0;
    for round in 0.. {
        assert!(
            round < 60,
            "the switch never finished: each resumed round was killed"
        );
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let this = delay + std::time::Duration::from_millis(seed % 40);
        let mut child = switch().spawn().unwrap();
        std::thread::sleep(this);
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed after {this:?} of {span:?} ({status})");
        let finished = match status.signal() {
            Some(sig) => {
                assert_eq!(sig, libc::SIGKILL, "round {round}: {status}");
                kills += 1;
                false
            }
            None => {
                assert!(
                    status.success(),
                    "round {round}: the resumed switch failed: {status}"
                );
                true
            }
        };
        env.fsck();
        // Booted and previous deployments are still there; at most a staged one was added,
        // and a staged deployment is complete.
        let now = snapshot(&engine);
        assert!(
            before.iter().all(|b| now.contains(b)),
            "round {round}: {now:?} vs {before:?}"
        );
        assert!(now.len() <= before.len() + 1, "round {round}: {now:?}");
        assert_eq!(booted_version(&engine), "1");
        let has_staged = engine.status().unwrap().status.staged.is_some();
        assert_eq!(
            now.len() == before.len() + 1,
            has_staged,
            "round {round}: {now:?}"
        );
        if has_staged {
            assert_complete_big_tree(&staged_dir(&env, &engine));
        }
        if finished {
            assert!(
                has_staged,
                "round {round}: the switch finished without staging"
            );
            break;
        }
        delay = delay * 5 / 4;
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed before the switch finished"
    );
    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "4");
    assert_complete_big_tree(&env.booted_dir(&engine));
    env.fsck();
}

/// The big update's tree is all there: its 400 small files with their content, the big one.
fn assert_complete_big_tree(root: &std::path::Path) {
    let many = root.join("usr/share/many");
    for i in [0u64, 199, 399] {
        let got = std::fs::read(many.join(format!("f{i}"))).unwrap();
        assert_eq!(got, image::noise(1000 + i, 4096), "{}/f{i}", many.display());
    }
    assert_eq!(std::fs::read_dir(&many).unwrap().count(), 400);
    let big = std::fs::metadata(root.join("usr/share/big.bin")).unwrap();
    assert_eq!(big.len(), 6 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_references_are_refused() {
    for bad in [
        "",
        "Upper-Case",
        "quay.io/os:bad tag",
        "quay.io/a/../b",
        "oci:relative",
        "x;rm -rf /",
    ] {
        let err = ImageRef::parse(bad).unwrap_err();
        assert_eq!(err.name(), "InvalidReference", "{bad}");
    }
    let env = Env::new("badref");
    let out = Command::new(env!("CARGO_BIN_EXE_berthd"))
        .args(["--sysroot"])
        .arg(env.dir.join("s"))
        .args(["install", "Not/A:Valid:Ref"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidReference"));
    assert!(
        !env.dir.join("s").exists(),
        "nothing was created for a bad reference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_download_stops_cleanly() {
    let env = Env::new("cancel");
    let mut big = demo::version(2);
    big.layers.push(Layer::new(vec![
        Entry::Dir("usr".into()),
        Entry::Dir("usr/share".into()),
        Entry::File("usr/share/big.bin".into(), image::noise(9, 24 << 20), 0o644),
    ]));
    image::write_layout(&env.layout, &[("big", &big)]).unwrap();
    env.registry.push(&env.layout, "big", "berth/demo").unwrap();
    let (engine, before) = installed(&env).await;
    // Cancel as soon as the first bytes arrive: the import is following the download then.
    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let progress: berth_engine::ProgressFn = std::sync::Arc::new(move |p| {
        if p.bytes_done > 0 {
            trigger.cancel();
        }
    });
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        engine.switch(&env.image("big"), false, progress, &cancel),
    )
    .await
    .expect("a cancelled pull returns promptly");
    assert!(
        matches!(result, Err(berth_engine::Error::Cancelled)),
        "{result:?}"
    );
    assert_eq!(snapshot(&engine), before);
    env.fsck();
    // Nothing half-done stands in the way of the next attempt.
    let out = engine
        .switch(&env.image("big"), false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    env.fsck();
}

/// After a power cut, a partial download can hold bytes that never reached the disk intact.
/// The resumed download then fails its digest: the engine downloads the blob again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_partial_download_is_fetched_again() {
    let env = Env::new("damaged-partial");
    let (engine, _) = installed(&env).await;
    let (blob, partial) = app_layer_of_v2(&env);
    // Half of it, the end of that half zeroed, as a crashed write would leave it.
    let mut damaged = blob[..blob.len() / 2].to_vec();
    let n = damaged.len();
    damaged[n - 4096..].fill(0);
    std::fs::write(&partial, &damaged).unwrap();
    let out = engine
        .switch(&env.image("2"), false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    assert!(!partial.exists());
    env.fsck();
}

/// v2's app layer (not in the sysroot yet), its bytes, and where a partial download of it goes.
fn app_layer_of_v2(env: &Env) -> (Vec<u8>, PathBuf) {
    let (digest, size) = env.written[1].layers.last().unwrap().clone();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let blob = std::fs::read(env.layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(blob.len() as u64, size);
    let partial = env.sysroot().join("ostree/berth/cache/partial").join(hex);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    (blob, partial)
}

/// A crash between a download's last byte and its rename leaves the whole blob as a partial.
/// Resuming it would ask the registry for the bytes after its end; docker-registry answers
/// that 416 with the blob's length and no body, so every retry failed and no update could
/// finish. The engine now checks such a partial itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_partial_download_is_used_without_asking_the_registry() {
    let env = Env::new("complete-partial");
    let (engine, _) = installed(&env).await;
    let (blob, partial) = app_layer_of_v2(&env);
    std::fs::write(&partial, &blob).unwrap();
    let out = engine
        .switch(&env.image("2"), false, progress::silent(), &Cancel::new())
        .await
        .expect("the update uses the complete partial download");
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    assert!(!partial.exists());
    env.fsck();
}

/// A partial of the blob's full size whose bytes are damaged is downloaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_partial_download_of_full_size_is_fetched_again() {
    let env = Env::new("damaged-full-partial");
    let (engine, _) = installed(&env).await;
    let (mut blob, partial) = app_layer_of_v2(&env);
    let n = blob.len();
    blob[n - 4096..].fill(0);
    std::fs::write(&partial, &blob).unwrap();
    let out = engine
        .switch(&env.image("2"), false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    assert!(!partial.exists());
    env.fsck();
}

/// The staged deployment's commit, stateroot and serial.
fn staged(engine: &Engine) -> berth_engine::status::OstreeEntry {
    let st = engine.status().unwrap();
    st.status
        .staged
        .expect("a staged deployment")
        .ostree
        .unwrap()
}

/// The staged deployment's checked-out tree.
fn staged_dir(env: &Env, engine: &Engine) -> PathBuf {
    let o = staged(engine);
    env.sysroot().join(format!(
        "ostree/deploy/{}/deploy/{}.{}",
        o.stateroot, o.checksum, o.deploy_serial
    ))
}

/// A power cut during an import can leave a content object's name on disk without its data:
/// ext4 commits the link within 5 s and writes the data later, so the object is an empty file
/// named by the checksum of its real content. The next import of that content must write it
/// again, not build the new deployment on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_left_empty_by_a_power_cut_is_written_again() {
    const FILE: &str = "usr/share/payload/app.bin";
    // A first sysroot that imported v2 tells the object's checksum and the file's bytes.
    let source = Env::new("empty-object-source");
    let (engine, _) = installed(&source).await;
    engine
        .switch(
            &source.image("2"),
            false,
            progress::silent(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    let expected = std::fs::read(staged_dir(&source, &engine).join(FILE)).unwrap();
    let commit = staged(&engine).checksum;
    let ls = Command::new("ostree")
        .arg(format!(
            "--repo={}",
            source.sysroot().join("ostree/repo").display()
        ))
        .args(["ls", "-C", &commit, &format!("/{FILE}")])
        .output()
        .unwrap();
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    // d00644 0 0 262144 <checksum> /usr/share/payload/app.bin
    let checksum = String::from_utf8(ls.stdout)
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .to_string();
    assert_eq!(checksum.len(), 64, "{checksum}");
    assert!(expected.len() > 1000);

    // A second sysroot that never finished importing v2, left with that object empty.
    let env = Env::new("empty-object");
    let (engine, _) = installed(&env).await;
    let object = env
        .sysroot()
        .join("ostree/repo/objects")
        .join(&checksum[..2])
        .join(format!("{}.file", &checksum[2..]));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"").unwrap();
    engine
        .switch(&env.image("2"), false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(staged_dir(&env, &engine).join(FILE)).unwrap(),
        expected,
        "the staged deployment's {FILE} is built on the empty object"
    );
    env.fsck();
}
