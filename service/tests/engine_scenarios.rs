//! Engine scenarios on a real registry and real ostree sysroots (tmpfs, private mount ns).

mod common;

use berth_engine::{progress, Cancel, Engine, ImageRef, UpdateOptions, UpdateOutcome};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_deploy_then_update_downloads_only_the_changed_layer() {
    let env = Env::new("update");
    // A moving tag, as users follow: "stable" is v1 now.
    let image = env.publish("1", "berth/stable:latest");
    let engine = env.install(&image).await;

    // First deploy: files, /etc moved to /usr/etc and checked out, /var seeded, boot entry.
    let d1 = env.booted_dir(&engine);
    assert_eq!(
        std::fs::read_to_string(d1.join("usr/etc/berth-demo.conf")).unwrap(),
        "setting=default\n"
    );
    assert_eq!(
        std::fs::read_to_string(d1.join("etc/berth-demo.conf")).unwrap(),
        "setting=default\n"
    );
    assert!(d1.join("usr/share/doc/obsolete.txt").exists());
    assert_eq!(
        std::fs::read_to_string(env.var("demo").join("lib/demo/seed")).unwrap(),
        "from the image\n"
    );
    assert!(
        std::fs::read_dir(d1.join("var")).unwrap().next().is_none(),
        "/var in the tree is empty"
    );
    let opts = env.boot_options();
    assert_eq!(opts.len(), 1);
    assert!(
        opts[0].starts_with("root=/dev/vda rw ostree=/ostree/boot."),
        "{opts:?}"
    );
    assert_eq!(booted_version(&engine), "1");
    let host = engine.status().unwrap();
    assert_eq!(host.api_version, "org.containers.bootc/v1");
    assert_eq!(
        host.status
            .booted
            .as_ref()
            .unwrap()
            .image
            .as_ref()
            .unwrap()
            .image_digest,
        env.written[0].manifest_digest
    );

    // Local state that must survive the update.
    std::fs::write(d1.join("etc/berth-demo.conf"), "setting=mine\n").unwrap();
    std::fs::write(d1.join("etc/local-only.conf"), "local\n").unwrap();
    std::fs::write(env.var("demo").join("lib/demo/data"), "user data\n").unwrap();

    // Nothing new yet.
    let check = engine.check(None).await.unwrap();
    assert!(!check.update_available);
    assert_eq!(check.download_bytes, 0);

    // The tag moves to v2: only the app layer is new.
    env.publish("2", "berth/stable:latest");
    let app_v2 = env.written[1].layers[1].1;
    let check = engine.check(None).await.unwrap();
    assert!(check.update_available);
    assert_eq!(check.version.as_deref(), Some("2"));
    assert_eq!(
        check.download_bytes, app_v2,
        "only the changed layer would be downloaded"
    );
    assert_eq!(check.layers_to_download, 1);

    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let sink: progress::ProgressFn =
        std::sync::Arc::new(move |p: &berth_engine::Progress| ev.lock().unwrap().push(p.clone()));
    let out = engine
        .update(UpdateOptions::default(), sink, &Cancel::new())
        .await
        .unwrap();
    let UpdateOutcome::Staged { pulled } = out else {
        panic!("not staged: {out:?}")
    };
    assert_eq!(
        pulled.downloaded_bytes, app_v2,
        "downloaded exactly the changed layer"
    );
    assert_eq!(pulled.imported_layers, 1);
    let events = events.lock().unwrap().clone();
    assert!(events
        .iter()
        .any(|p| p.phase == berth_engine::Phase::Downloading));
    assert!(events
        .iter()
        .any(|p| p.phase == berth_engine::Phase::Staging));
    let last_dl = events.iter().rfind(|p| p.bytes_total > 0).unwrap();
    assert_eq!((last_dl.bytes_done, last_dl.bytes_total), (app_v2, app_v2));

    // Staged, not booted yet.
    let st = engine.status().unwrap();
    assert_eq!(
        st.status.staged.unwrap().image.unwrap().version.as_deref(),
        Some("2")
    );
    assert_eq!(booted_version(&engine), "1");
    // Updating again is a no-op while v2 is staged.
    assert!(matches!(
        engine
            .update(UpdateOptions::default(), progress::silent(), &Cancel::new())
            .await
            .unwrap(),
        UpdateOutcome::NoUpdate { .. }
    ));

    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "2");
    let d2 = env.booted_dir(&engine);
    assert_ne!(d1, d2);
    assert_eq!(
        std::fs::read_to_string(d2.join("etc/berth-demo.conf")).unwrap(),
        "setting=mine\n",
        "local /etc edit survives"
    );
    assert_eq!(
        std::fs::read_to_string(d2.join("etc/local-only.conf")).unwrap(),
        "local\n"
    );
    assert_eq!(
        std::fs::read_to_string(d2.join("etc/new-in-v2.conf")).unwrap(),
        "new=yes\n",
        "new image /etc file arrives"
    );
    assert!(
        !d2.join("usr/share/doc/obsolete.txt").exists(),
        "whiteout deleted the file"
    );
    assert!(d2.join("usr/share/doc").is_dir());
    assert_eq!(
        std::fs::read_to_string(env.var("demo").join("lib/demo/data")).unwrap(),
        "user data\n",
        "/var survives"
    );
    let opts = env.boot_options();
    assert_eq!(opts.len(), 2);
    assert!(
        opts.iter()
            .any(|o| o.contains("berth.demo=1") && o.contains("root=/dev/vda")),
        "image kargs added, old kept: {opts:?}"
    );

    // Rollback: v1 becomes default, v2 stays booted until reboot.
    engine.rollback().unwrap();
    let st = engine.status().unwrap();
    assert!(st.status.rollback_queued);
    assert_eq!(st.spec.boot_order, "rollback");
    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "1");
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_pin_cleanup_and_rollback_discards_staged() {
    let env = Env::new("pin");
    let engine = env.install(&env.image("1")).await;
    engine.set_pinned(0, true).unwrap();
    for tag in ["2", "3"] {
        let out = engine
            .switch(&env.image(tag), false, progress::silent(), &Cancel::new())
            .await
            .unwrap();
        assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
        engine.reboot().unwrap();
    }
    assert_eq!(booted_version(&engine), "3");
    assert_eq!(
        engine.status().unwrap().spec.image.unwrap().image,
        format!("{}/berth/demo:3", env.registry.addr)
    );
    engine.cleanup().unwrap();
    assert_eq!(
        deployment_versions(&engine),
        vec!["3", "2", "1"],
        "pinned v1 survives cleanup"
    );
    assert!(engine.status().unwrap().status.berth.deployments[2].pinned);
    engine.set_pinned(2, false).unwrap();
    let report = engine.cleanup().unwrap();
    assert_eq!(
        deployment_versions(&engine),
        vec!["3", "2"],
        "unpinned v1 is pruned"
    );
    assert!(report.removed_images >= 1, "{report:?}");
    env.fsck();

    // A staged deployment is discarded by rollback.
    engine
        .switch(&env.image("1"), false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(engine.status().unwrap().status.staged.is_some());
    engine.rollback().unwrap();
    let st = engine.status().unwrap();
    assert!(st.status.staged.is_none());
    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "2");
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_reset_wipes_state_and_keeps_old_stateroot_until_booted() {
    let env = Env::new("reset");
    let engine = env.install(&env.image("1")).await;
    let d1 = env.booted_dir(&engine);
    std::fs::write(d1.join("etc/berth-demo.conf"), "setting=mine\n").unwrap();
    std::fs::write(env.var("demo").join("lib/demo/data"), "user data\n").unwrap();

    let new_root = engine.factory_reset().unwrap();
    assert_eq!(new_root, "demo-reset1");
    // Before the reset system boots, nothing is lost.
    assert_eq!(booted_version(&engine), "1");
    assert_eq!(
        engine
            .status()
            .unwrap()
            .status
            .booted
            .unwrap()
            .ostree
            .unwrap()
            .stateroot,
        "demo"
    );
    assert!(env.var("demo").join("lib/demo/data").exists());
    assert_eq!(
        std::fs::read_to_string(d1.join("etc/berth-demo.conf")).unwrap(),
        "setting=mine\n"
    );

    engine.reboot().unwrap();
    let st = engine.status().unwrap();
    assert_eq!(
        st.status.booted.unwrap().ostree.unwrap().stateroot,
        "demo-reset1"
    );
    let d = env.booted_dir(&engine);
    assert_eq!(
        std::fs::read_to_string(d.join("etc/berth-demo.conf")).unwrap(),
        "setting=default\n",
        "/etc is pristine"
    );
    assert!(
        !env.var("demo-reset1").join("lib/demo/data").exists(),
        "/var user data is gone"
    );
    assert_eq!(
        std::fs::read_to_string(env.var("demo-reset1").join("lib/demo/seed")).unwrap(),
        "from the image\n"
    );
    assert!(
        env.var("demo").exists(),
        "old state still on disk until cleanup"
    );

    let report = engine.cleanup().unwrap();
    assert_eq!(report.removed_stateroots, vec!["demo".to_string()]);
    assert!(!env.sysroot().join("ostree/deploy/demo").exists());
    assert!(engine
        .status()
        .unwrap()
        .status
        .berth
        .deployments
        .iter()
        .all(|d| d.stateroot == "demo-reset1"));
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_only_then_stage_from_downloaded_without_network() {
    let env = Env::new("dlonly");
    // Follow a layout copy we can take away later, to prove no network is used.
    env.registry.push(&env.layout, "1", "berth/track").unwrap();
    let image = ImageRef::parse(&format!("{}/berth/track:1", env.registry.addr)).unwrap();
    let engine = env.install(&image).await;
    env.registry.push(&env.layout, "2", "berth/track").unwrap();
    // Re-point tag 1 at v2 so the tracked reference has an update.
    env.publish("2", "berth/track:1");
    let out = engine
        .update(
            UpdateOptions {
                download_only: true,
                ..Default::default()
            },
            progress::silent(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Downloaded { .. }), "{out:?}");
    let st = engine.status().unwrap();
    assert!(st.status.staged.is_none());
    assert_eq!(
        st.status
            .booted
            .unwrap()
            .cached_update
            .unwrap()
            .version
            .as_deref(),
        Some("2")
    );
    // Cleanup keeps the downloaded update.
    engine.cleanup().unwrap();
    drop(env.registry.push(&env.layout, "3", "berth/unrelated"));
    let config = berth_engine::Config {
        insecure_registries: vec!["127.0.0.1:1".into()],
        ..Default::default()
    };
    let offline = Engine::open(&env.sysroot(), config).unwrap();
    let out = offline
        .update(
            UpdateOptions {
                from_downloaded: true,
                ..Default::default()
            },
            progress::silent(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    offline.reboot().unwrap();
    assert_eq!(booted_version(&offline), "2");
    assert!(offline
        .status()
        .unwrap()
        .status
        .berth
        .cached_update
        .is_none());
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_oci_layout_source_installs_and_updates() {
    let env = Env::new("layout");
    let engine = env
        .install(&ImageRef::parse(&format!("oci:{}:1", env.layout.display())).unwrap())
        .await;
    assert_eq!(booted_version(&engine), "1");
    let out = engine
        .switch(
            &ImageRef::parse(&format!("oci:{}:2", env.layout.display())).unwrap(),
            false,
            progress::silent(),
            &Cancel::new(),
        )
        .await
        .unwrap();
    let UpdateOutcome::Staged { pulled } = out else {
        panic!()
    };
    assert_eq!(pulled.imported_layers, 1);
    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "2");
    assert_eq!(
        engine
            .status()
            .unwrap()
            .status
            .booted
            .unwrap()
            .image
            .unwrap()
            .image
            .transport,
        "oci"
    );
    env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_modes_and_xattrs_survive_import() {
    use berth_testkit::image::{self, Entry, Layer};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new("xattrs");
    let mut img = berth_testkit::demo::version(1);
    img.layers.push(Layer::new(vec![
        Entry::Dir("usr".into()),
        Entry::Dir("usr/bin".into()),
        Entry::XattrFile(
            "usr/bin/pinger".into(),
            b"#!/bin/sh\n".to_vec(),
            0o755,
            vec![
                ("user.berth.note".into(), b"hello".to_vec()),
                ("user.berth.empty".into(), Vec::new()),
            ],
        ),
        Entry::File("usr/bin/suid".into(), b"#!/bin/sh\n".to_vec(), 0o4755),
        Entry::File("usr/bin/sgid".into(), b"#!/bin/sh\n".to_vec(), 0o2711),
    ]));
    image::write_layout(&env.layout, &[("attrs", &img)]).unwrap();
    env.registry
        .push(&env.layout, "attrs", "berth/demo")
        .unwrap();
    let engine = env.install(&env.image("attrs")).await;
    let root = env.booted_dir(&engine);
    let pinger = root.join("usr/bin/pinger");
    assert_eq!(
        common::xattr(&pinger, "user.berth.note").as_deref(),
        Some(&b"hello"[..])
    );
    // ostree cannot record an empty value (see import.rs): dropped.
    assert_eq!(common::xattr(&pinger, "user.berth.empty"), None);
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/bin/pinger"), 0o755);
    assert_eq!(mode("usr/bin/suid"), 0o4755);
    assert_eq!(mode("usr/bin/sgid"), 0o2711);
    assert_eq!(std::fs::metadata(&pinger).unwrap().uid(), 0);
    // ostree re-hashes every object, xattrs and modes included, against its own format.
    env.fsck();
}

/// The shutdown's finalization works in the staged deployment's own checkout (no second
/// checkout of the tree) and merges `/etc` as the booted system has it then: edits made after
/// the update was staged come along, removals too, and the new image's defaults arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalization_merges_etc_at_shutdown_into_the_staged_checkout() {
    use berth_engine::deployments;
    let env = Env::new("finalize-etc");
    let engine = env.install(&env.image("1")).await;
    stage_switch(&engine, &env.image("2")).await;
    let staged_dir = env.deployment_dir(&engine, 1);
    assert!(
        staged_dir.join("etc/new-in-v2.conf").exists(),
        "{staged_dir:?}"
    );
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let staged_usr = inode(&staged_dir.join("usr"));

    // After staging, before the shutdown: the administrator edits, adds and removes.
    let booted = env.booted_dir(&engine);
    std::fs::write(booted.join("etc/berth-demo.conf"), "setting=late\n").unwrap();
    std::fs::create_dir_all(booted.join("etc/late.d")).unwrap();
    std::fs::write(booted.join("etc/late.d/x.conf"), "late\n").unwrap();
    let removed = "hostname";
    std::fs::remove_file(booted.join("etc").join(removed)).unwrap();

    let sysroot = deployments::open(&env.sysroot()).unwrap();
    let staged = deployments::staged(&sysroot).expect("a staged deployment");
    deployments::finalize(&sysroot, &staged, 0).unwrap();

    assert_eq!(common::deployment_versions(&engine), ["2", "1"]);
    let new = env.deployment_dir(&engine, 0);
    assert_eq!(
        new, staged_dir,
        "the staged checkout itself is the new default"
    );
    assert_eq!(inode(&new.join("usr")), staged_usr, "not checked out again");
    let read = |p: &str| std::fs::read_to_string(new.join(p)).unwrap();
    assert_eq!(read("etc/berth-demo.conf"), "setting=late\n");
    assert_eq!(read("etc/late.d/x.conf"), "late\n");
    assert!(
        !new.join("etc").join(removed).exists(),
        "{removed} was removed"
    );
    assert_eq!(read("etc/new-in-v2.conf"), "new=yes\n");
    let origin = std::fs::read_to_string(new.with_extension(format!(
        "{}.origin",
        new.extension().unwrap().to_str().unwrap()
    )))
    .unwrap();
    assert!(!origin.contains("staged"), "{origin}");
    env.fsck();
}
