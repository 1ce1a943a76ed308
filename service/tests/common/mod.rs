//! Shared set-up for the engine integration tests: a private directory on the test tmpfs,
//! a real registry holding the demo OS, and helpers to inspect the sysroot.

#![allow(dead_code)]

pub mod control;
pub mod service;

use berth_engine::{progress, Cancel, Config, Engine, ImageRef, InstallOptions};
use berth_testkit::{demo, image, registry::Registry};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const TMPFS_MAGIC: i64 = 0x0102_1994;
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The tmpfs that tests/run-engine-tests.sh mounted inside a private mount namespace.
/// Refuses to run anywhere else: ostree freezes the filesystem holding /boot.
pub fn test_root() -> PathBuf {
    let root = std::env::var("BERTH_TEST_TMP")
        .expect("BERTH_TEST_TMP is not set: run the tests with tests/run-engine-tests.sh");
    let root = PathBuf::from(root);
    assert_eq!(
        fs_type(&root),
        TMPFS_MAGIC,
        "{} must be a tmpfs",
        root.display()
    );
    root
}

pub fn fs_type(p: &Path) -> i64 {
    let st = rustix::fs::statfs(p).unwrap_or_else(|e| panic!("statfs {}: {e}", p.display()));
    st.f_type as i64
}

pub struct Env {
    pub dir: PathBuf,
    pub registry: Registry,
    pub layout: PathBuf,
    pub config: Config,
    pub written: Vec<image::Written>,
}

impl Env {
    /// A fresh directory and registry with the demo OS pushed as tags 1, 2, 3.
    pub fn new(name: &str) -> Env {
        let dir = test_root().join(format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let registry = Registry::start(&dir.join("registry")).unwrap();
        let layout = dir.join("layout");
        let (v1, v2, v3) = (demo::version(1), demo::version(2), demo::version(3));
        let written = image::write_layout(&layout, &[("1", &v1), ("2", &v2), ("3", &v3)]).unwrap();
        for tag in ["1", "2", "3"] {
            registry.push(&layout, tag, "berth/demo").unwrap();
        }
        let config = Config {
            insecure_registries: vec![registry.addr.clone()],
            ..Config::default()
        };
        Env {
            dir,
            registry,
            layout,
            config,
            written,
        }
    }

    pub fn image(&self, tag: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/berth/demo:{tag}", self.registry.addr)).unwrap()
    }

    /// Points `repo:tag` of the registry at the layout's version `version` (a moving tag, as
    /// users follow); returns the reference.
    pub fn publish(&self, version: &str, repo_tag: &str) -> ImageRef {
        let st = std::process::Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{version}", self.layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.registry.addr))
            .status()
            .unwrap();
        assert!(st.success(), "skopeo copy {version} to {repo_tag}");
        ImageRef::parse(&format!("{}/{repo_tag}", self.registry.addr)).unwrap()
    }

    pub fn sysroot(&self) -> PathBuf {
        self.dir.join("sysroot")
    }

    pub async fn install(&self, image: &ImageRef) -> Engine {
        self.install_at(&self.sysroot(), image).await.unwrap();
        Engine::open(&self.sysroot(), self.config.clone()).unwrap()
    }

    /// Installs `image` as the first deployment of a sysroot at `sysroot`.
    pub async fn install_at(&self, sysroot: &Path, image: &ImageRef) -> berth_engine::Result<()> {
        let opts = InstallOptions {
            stateroot: "demo".into(),
            kargs: vec!["root=/dev/vda".into(), "rw".into()],
        };
        berth_engine::install(
            sysroot,
            image,
            &opts,
            self.config.clone(),
            progress::silent(),
            &Cancel::new(),
        )
        .await
    }

    /// The checked-out tree of the deployment with `index`.
    pub fn deployment_dir(&self, engine: &Engine, index: usize) -> PathBuf {
        let st = engine.status().unwrap();
        let d = &st.status.berth.deployments[index];
        self.sysroot().join(format!(
            "ostree/deploy/{}/deploy/{}.{}",
            d.stateroot, d.checksum, d.deploy_serial
        ))
    }

    pub fn booted_dir(&self, engine: &Engine) -> PathBuf {
        let st = engine.status().unwrap();
        let i = st
            .status
            .berth
            .deployments
            .iter()
            .position(|d| d.booted)
            .expect("a booted deployment");
        self.deployment_dir(engine, i)
    }

    pub fn var(&self, stateroot: &str) -> PathBuf {
        self.sysroot()
            .join(format!("ostree/deploy/{stateroot}/var"))
    }

    /// Runs `ostree fsck` on the sysroot's repository and asserts it is clean.
    pub fn fsck(&self) {
        let out = Command::new("ostree")
            .arg("fsck")
            .arg(format!(
                "--repo={}",
                self.sysroot().join("ostree/repo").display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ostree fsck failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The BLS entries' option lines.
    pub fn boot_options(&self) -> Vec<String> {
        let dir = self.sysroot().join("boot/loader/entries");
        let mut out = Vec::new();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if let Some(o) = line.strip_prefix("options ") {
                    out.push(o.to_string());
                }
            }
        }
        out
    }
}

/// The booted deployment's image version.
pub fn booted_version(engine: &Engine) -> String {
    let st = engine.status().unwrap();
    st.status.booted.unwrap().image.unwrap().version.unwrap()
}

/// Switches to `image` and checks that it was staged (to boot next).
pub async fn stage_switch(engine: &Engine, image: &ImageRef) {
    let out = engine
        .switch(image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(
        matches!(out, berth_engine::UpdateOutcome::Staged { .. }),
        "{out:?}"
    );
}

pub fn deployment_versions(engine: &Engine) -> Vec<String> {
    engine
        .status()
        .unwrap()
        .status
        .berth
        .deployments
        .iter()
        .map(|d| {
            d.image
                .as_ref()
                .and_then(|i| i.version.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Reads an extended attribute without following symlinks.
pub fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let len = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    Some(buf[..len].to_vec())
}

/// Mounts a tmpfs of `mib` MiB at `dir` (in the tests' private mount namespace).
pub fn small_fs(dir: &Path, mib: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m,mode=0755"),
            "berth-small",
        ])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The value of a Boot Loader Specification entry's `key` line.
/// What installing GRUB leaves: an empty environment block (`grub-editenv create`).
pub fn install_grub(sysroot: &Path) -> PathBuf {
    let env = berth_engine::bootcount::env_path(&sysroot.join("boot"));
    std::fs::create_dir_all(env.parent().unwrap()).unwrap();
    let mut block = b"# GRUB Environment Block\n".to_vec();
    block.resize(1024, b'#');
    std::fs::write(&env, block).unwrap();
    env
}

/// One boot as GRUB's menu script plays it on the environment block (tests/vm/grub-fallback.sh,
/// the VM harness's bootloader): the menu entry it boots, 0 (default) or 1 (previous).
pub fn grub_boot(grubenv: &Path) -> usize {
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
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Boots (as the emulation records it) the deployment of the OS with this VERSION_ID, as a
/// bootloader choosing its entry would.
pub fn emulate_boot_of_version(sysroot: &Path, version: &str) {
    let s = berth_engine::deployments::open(sysroot).unwrap();
    let d = s
        .deployments()
        .into_iter()
        .find(|d| {
            let root = berth_engine::deployments::deployment_dir(&s, d);
            std::fs::read_to_string(root.join("usr/lib/os-release"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.strip_prefix("VERSION_ID="))
                .any(|v| v.trim_matches('"') == version)
        })
        .expect("a deployment of that version");
    berth_engine::deployments::emulate_boot_of(&s, &d).unwrap();
}

pub fn bls_field<'a>(entry: &'a str, key: &str) -> Option<&'a str> {
    entry.lines().find_map(|l| {
        l.strip_prefix(key)
            .filter(|rest| rest.starts_with(' '))
            .map(str::trim)
    })
}
