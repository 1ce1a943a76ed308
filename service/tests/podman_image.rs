//! An image built the way users build theirs: a Containerfile with `FROM` a base and `RUN`
//! steps that add, change and delete files, built by podman and pushed to the registry, then
//! deployed by the engine. Covers real tooling's layer conventions (one layer per step,
//! whiteouts written by the container runtime, modes set by `chmod`).

mod common;

use berth_engine::{progress, Cancel, ImageRef, UpdateOutcome};
use berth_testkit::demo;
use berth_testkit::image::{self, Entry};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const CONTAINERFILE: &str = r#"FROM scratch
ADD base.tar /
RUN echo "added by a RUN step" > /usr/share/added.txt && mkdir -p /etc/app && echo "mode=podman" > /etc/app/app.conf
RUN echo "changed by a RUN step" > /usr/share/payload/notes.txt && echo "setting=from-podman" > /etc/berth-demo.conf
RUN rm /usr/share/doc/obsolete.txt && rm -r /usr/share/old-dir
RUN echo '#!/bin/sh' > /usr/bin/privileged && chmod 4755 /usr/bin/privileged
LABEL org.opencontainers.image.version="podman-1" containers.bootc="1"
"#;

/// The demo OS (base + app v1) plus a static busybox, so `RUN` steps have a shell.
fn base_tar(path: &Path) {
    let mut entries = demo::base_layer().entries;
    entries.extend(demo::app_layer(1).entries);
    entries.extend([
        Entry::File(
            "usr/bin/busybox".into(),
            std::fs::read("/bin/busybox").expect("busybox-static (see .ci/install-deps)"),
            0o755,
        ),
        image::file("usr/share/payload/notes.txt", "from the base\n"),
        Entry::Dir("usr/share/old-dir".into()),
        image::file("usr/share/old-dir/file", "deleted with its directory\n"),
    ]);
    for applet in ["sh", "rm", "mkdir", "chmod", "echo"] {
        entries.push(Entry::Symlink(
            format!("usr/bin/{applet}"),
            "busybox".into(),
        ));
    }
    std::fs::write(path, image::layer_tar(&entries).unwrap()).unwrap();
}

/// `podman` with its storage inside the test directory (vfs, chroot isolation: see README).
fn podman(dir: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args([
            "--storage-driver=vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ]);
    cmd
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerfile_built_by_podman_deploys() {
    let env = Env::new("podman");
    let ctx = env.dir.join("podman-context");
    std::fs::create_dir_all(&ctx).unwrap();
    base_tar(&ctx.join("base.tar"));
    std::fs::write(ctx.join("Containerfile"), CONTAINERFILE).unwrap();
    let tag = "localhost/berth-podman:1";
    run(podman(&env.dir)
        .args(["build", "--isolation=chroot", "-t", tag, "-f"])
        .arg(ctx.join("Containerfile"))
        .arg(&ctx));
    let remote = format!("{}/berth/podman:1", env.registry.addr);
    run(podman(&env.dir)
        .args(["push", "--tls-verify=false", tag])
        .arg(format!("docker://{remote}")));

    let engine = env.install(&env.image("1")).await;
    let etc_edit = env.booted_dir(&engine).join("etc/hostname");
    std::fs::write(&etc_edit, "edited-locally\n").unwrap();
    let image = ImageRef::parse(&remote).unwrap();
    let out = engine
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    let UpdateOutcome::Staged { pulled } = out else {
        panic!("expected a staged deployment, got {out:?}");
    };
    // FROM scratch + ADD + four RUN steps: podman wrote one layer per step.
    assert!(
        pulled.imported_layers >= 5,
        "imported {} layers",
        pulled.imported_layers
    );
    engine.reboot().unwrap();
    assert_eq!(booted_version(&engine), "podman-1");
    let root = env.booted_dir(&engine);
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("usr/share/added.txt"), "added by a RUN step\n");
    assert_eq!(
        read("usr/share/payload/notes.txt"),
        "changed by a RUN step\n"
    );
    assert!(!root.join("usr/share/doc/obsolete.txt").exists());
    assert!(!root.join("usr/share/old-dir").exists());
    assert!(root.join("usr/share/doc").is_dir());
    // /etc from the image, 3-way merged: new files arrive, the local edit stays, and a file
    // the image changed but the user did not takes the image's version.
    assert_eq!(read("etc/app/app.conf"), "mode=podman\n");
    assert_eq!(read("etc/hostname"), "edited-locally\n");
    assert_eq!(read("etc/berth-demo.conf"), "setting=from-podman\n");
    let mode = std::fs::metadata(root.join("usr/bin/privileged"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755, "setuid bit kept: {mode:o}");
    assert!(root
        .join(format!("usr/lib/modules/{}/vmlinuz", demo::KERNEL_VERSION))
        .exists());
    env.fsck();
}
