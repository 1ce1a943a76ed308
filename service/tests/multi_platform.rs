//! Multi-platform images: from an image index the engine takes the host's platform
//! (linux/amd64 here), from the registry and from an OCI layout alike, and refuses an index
//! without it.

mod common;

use berth_engine::{progress, Cancel, Error, ImageRef, UpdateOutcome};
use berth_testkit::{demo, image};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_index_yields_the_host_platform() {
    let env = Env::new("index");
    // Another architecture's build: same OS, its own version label, so a wrong pick shows.
    let mut arm = demo::version(2);
    arm.labels
        .insert("org.opencontainers.image.version".into(), "arm64".into());
    image::write_layout(&env.layout, &[("arm", &arm)]).unwrap();
    image::write_index(&env.layout, "multi", &[("arm", "arm64"), ("2", "amd64")]).unwrap();
    image::write_index(&env.layout, "arm-only", &[("arm", "arm64")]).unwrap();
    for tag in ["multi", "arm-only"] {
        env.registry.push(&env.layout, tag, "berth/index").unwrap();
    }
    let engine = env.install(&env.image("1")).await;

    let remote = ImageRef::parse(&format!("{}/berth/index:multi", env.registry.addr)).unwrap();
    let check = engine.check(Some(&remote)).await.unwrap();
    assert_eq!(check.version.as_deref(), Some("2"), "{check:?}");
    let out = engine
        .switch(&remote, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(matches!(out, UpdateOutcome::Staged { .. }), "{out:?}");
    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "2");

    // The same index read from the OCI layout directory.
    let local = ImageRef::parse(&format!("oci:{}:multi", env.layout.display())).unwrap();
    let check = engine.check(Some(&local)).await.unwrap();
    assert_eq!(check.version.as_deref(), Some("2"), "{check:?}");

    let arm_only = ImageRef::parse(&format!("{}/berth/index:arm-only", env.registry.addr)).unwrap();
    let err = engine
        .switch(&arm_only, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("linux/amd64"), "{err}");
    assert_eq!(booted_version(&engine), "2");
    env.fsck();
}
