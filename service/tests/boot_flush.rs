//! The boot flush against a real ext4 filesystem on a loop device. A power cut is a copy of
//! the disk image taken while it is mounted; the bootloader's view of it is read with
//! debugfs, which (like GRUB) does not replay the journal, and the kernel's view after the
//! journal is replayed (e2fsck -E journal_only), as the next boot's mount would.

mod common;

use berth_engine::bootflush::{self, Flush};
use berth_engine::{deployments, faults};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

/// The tests of this file run one at a time: ostree calls sync(2) while it writes deployments,
/// which writes every filesystem's committed journal blocks to their home locations, the
/// flush the ostree-order test must not get from anyone else.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `link` points to on the image, or None if it does not exist there.
fn link_on(img: &Path, link: &str) -> Option<String> {
    debugfs(img, &format!("stat {link}"))
        .lines()
        .find_map(|l| l.trim().strip_prefix("Fast link dest: \""))
        .map(|l| l.trim_end_matches('"').to_string())
}

/// A freshly made ext4 filesystem, loop-mounted, as ostree leaves it before an update:
/// /loader -> loader.0, whose entries boot /ostree/boot.0; everything flushed.
struct Disk {
    img: PathBuf,
    mnt: PathBuf,
    _fs: LoopFs,
}

impl Disk {
    fn new(name: &str) -> Disk {
        let dir = common::test_root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (img, mnt) = (dir.join("disk.img"), dir.join("mnt"));
        let _fs = LoopFs::new(&img, &mnt, "64M");
        let disk = Disk { img, mnt, _fs };
        std::fs::create_dir_all(disk.mnt.join("loader.0/entries")).unwrap();
        std::fs::create_dir_all(disk.mnt.join("ostree")).unwrap();
        disk.symlink("loader.0", "loader");
        disk.symlink("boot.0.0", "ostree/boot.0");
        assert_eq!(bootflush::flush(&disk.mnt).unwrap(), Flush::Checkpoint);
        disk
    }

    fn symlink(&self, target: &str, link: &str) {
        std::os::unix::fs::symlink(target, self.mnt.join(link)).unwrap();
    }

    fn fsync_dir(&self, dir: &str) {
        let f = std::fs::File::open(self.mnt.join(dir)).unwrap();
        f.sync_all().unwrap();
    }

    /// ostree's bootloader swap: new links, then /loader renamed to the new entries, fsynced.
    fn swap(&self) {
        std::fs::create_dir_all(self.mnt.join("loader.1/entries")).unwrap();
        self.symlink("boot.1.0", "ostree/boot.1");
        self.fsync_dir("ostree");
        self.symlink("loader.1", "loader.tmp");
        std::fs::rename(self.mnt.join("loader.tmp"), self.mnt.join("loader")).unwrap();
        self.fsync_dir(".");
    }

    /// ostree's cleanup: the old entries' boot link goes; fsynced, so it is in the journal.
    fn delete_old(&self) {
        std::fs::remove_file(self.mnt.join("ostree/boot.0")).unwrap();
        self.fsync_dir("ostree");
    }

    /// The power cut: the disk as it is now. Returns (bootloader view, kernel view).
    fn cut(&self, name: &str) -> (PathBuf, PathBuf) {
        let raw = self.img.with_file_name(format!("{name}-raw.img"));
        let replayed = self.img.with_file_name(format!("{name}-replayed.img"));
        std::fs::copy(&self.img, &raw).unwrap();
        std::fs::copy(&self.img, &replayed).unwrap();
        replay_journal(&replayed);
        (raw, replayed)
    }

    /// Whether the boot link of the entries the bootloader picks exists once the kernel has
    /// replayed the journal: the machine boots.
    fn boots(&self, name: &str) -> bool {
        let (raw, replayed) = self.cut(name);
        let loader = link_on(&raw, "/loader").expect("a loader link");
        let boot_link = if loader == "loader.0" {
            "/ostree/boot.0"
        } else {
            "/ostree/boot.1"
        };
        link_on(&replayed, boot_link).is_some()
    }
}

#[test]
fn fsync_alone_leaves_the_bootloader_on_entries_the_kernel_has_deleted() {
    let _alone = ONE_AT_A_TIME.blocking_lock();
    // The premise of the flush, and ostree 2022.7's order: swap, then delete at once.
    let disk = Disk::new("boot-flush-ostree-order");
    disk.swap();
    let (raw, _) = disk.cut("after-swap");
    assert_eq!(link_on(&raw, "/loader").as_deref(), Some("loader.0"));
    disk.delete_old();
    assert!(
        !disk.boots("after-delete"),
        "expected the unbootable state ostree#3392 describes"
    );
}

#[test]
fn flushing_between_the_swap_and_the_deletion_keeps_every_cut_bootable() {
    let _alone = ONE_AT_A_TIME.blocking_lock();
    let disk = Disk::new("boot-flush-berth-order");
    assert!(disk.boots("before"));
    disk.swap();
    assert!(disk.boots("after-swap"));
    assert_eq!(bootflush::flush(&disk.mnt).unwrap(), Flush::Checkpoint);
    let (raw, _) = disk.cut("after-flush");
    assert_eq!(link_on(&raw, "/loader").as_deref(), Some("loader.1"));
    disk.delete_old();
    assert!(disk.boots("after-delete"));
}

#[test]
fn a_filesystem_without_a_journal_is_synced() {
    let _alone = ONE_AT_A_TIME.blocking_lock();
    let dir = common::test_root().join("boot-flush-tmpfs");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(bootflush::flush(&dir).unwrap(), Flush::Sync);
}

// Berth's own finalization and deployment-list writes on a sysroot on ext4, with the disk
// copied at each of their fault points (engine/src/faults.rs): every copy must boot, the old
// version until the new boot entries are flushed and the new one from then on.

/// The disk copies taken while armed: (the image to copy, the copies as (point, path)).
type Cuts = (PathBuf, Vec<(String, PathBuf)>);
static CUTS: Mutex<Option<Cuts>> = Mutex::new(None);

fn arm(img: &Path) {
    static OBSERVER: Once = Once::new();
    OBSERVER.call_once(|| {
        faults::observe(|point| {
            if let Some((img, cuts)) = CUTS.lock().unwrap().as_mut() {
                let copy = img.with_file_name(format!("cut-{}-{point}.img", cuts.len()));
                copy_sparse(img, &copy);
                cuts.push((point.to_string(), copy));
            }
        });
    });
    *CUTS.lock().unwrap() = Some((img.to_path_buf(), Vec::new()));
}

fn disarm() -> Vec<(String, PathBuf)> {
    CUTS.lock().unwrap().take().unwrap().1
}

/// Replays the journal of a copied disk, as the next boot's mount does.
fn replay_journal(img: &Path) {
    let st = Command::new("e2fsck")
        .args(["-y", "-E", "journal_only"])
        .arg(img)
        .output()
        .expect("e2fsck");
    assert!(
        st.status.code().is_some_and(|c| c <= 1),
        "e2fsck: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// Copies a disk image keeping its holes: the test's tmpfs holds many copies.
fn copy_sparse(from: &Path, to: &Path) {
    run(Command::new("cp").arg("--sparse=always").arg(from).arg(to));
}

/// An ext4 filesystem in `img`, loop-mounted at `mnt` for the life of the value.
struct LoopFs(PathBuf);

impl LoopFs {
    fn new(img: &Path, mnt: &Path, size: &str) -> LoopFs {
        std::fs::create_dir_all(mnt).unwrap();
        run(Command::new("truncate").args(["-s", size]).arg(img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(img));
        run(Command::new("mount").args(["-o", "loop"]).arg(img).arg(mnt));
        LoopFs(mnt.to_path_buf())
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A debugfs request on a disk image; -c: without the allocation bitmaps, as a bootloader
/// reads the disk.
fn debugfs(img: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-c", "-R", request])
        .arg(img)
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The version a machine boots from the disk `cut`, or None if it cannot boot: the
/// bootloader reads the default (highest `version`) entry and its kernel without replaying
/// the journal, the kernel then mounts the filesystem (replaying it) and needs the
/// deployment the entry's `ostree=` argument names.
fn boots_from(cut: &Path) -> Option<String> {
    let replayed = cut.with_extension("replayed.img");
    copy_sparse(cut, &replayed);
    replay_journal(&replayed);
    let version = boots_version(cut, &replayed);
    let _ = std::fs::remove_file(&replayed);
    version
}

fn boots_version(cut: &Path, replayed: &Path) -> Option<String> {
    let loader = link_on(cut, "/boot/loader")?;
    let listing = debugfs(cut, &format!("ls -p /boot/{loader}/entries"));
    let mut entries: Vec<(u64, String)> = listing
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .filter(|name| name.ends_with(".conf"))
        .map(|name| debugfs(cut, &format!("cat /boot/{loader}/entries/{name}")))
        .map(|text| {
            let version = common::bls_field(&text, "version").and_then(|v| v.parse().ok());
            (version.unwrap_or(0), text)
        })
        .collect();
    entries.sort();
    let (_, entry) = entries.pop()?;
    let kernel = common::bls_field(&entry, "linux")?;
    if debugfs(cut, &format!("stat /boot{kernel}")).is_empty() {
        return None;
    }
    let root = common::bls_field(&entry, "options")?
        .split(' ')
        .find_map(|a| a.strip_prefix("ostree="))?
        .to_string();
    let os_release = debugfs(replayed, &format!("cat {root}/usr/lib/os-release"));
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berths_finalization_and_rollback_boot_the_old_or_new_version_at_every_point() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let env = common::Env::new("finalize-cuts");
    let img = env.dir.join("sysroot.img");
    let _fs = LoopFs::new(&img, &env.sysroot(), "256M");
    let engine = env.install(&env.image("1")).await;
    common::stage_switch(&engine, &env.image("2")).await;
    let sysroot = deployments::open(&env.sysroot()).unwrap();
    let staged = deployments::staged(&sysroot).expect("a staged deployment");

    arm(&img);
    deployments::finalize(&sysroot, &staged, berth_engine::bootcount::DEFAULT_TRIES).unwrap();
    let cuts = disarm();
    let expected = [
        (faults::DEPLOYED, "1"),
        (faults::ENTRIES_WRITTEN, "1"),
        (faults::FLUSHED, "2"),
        (faults::CLEANED, "2"),
    ];
    check_cuts("finalization", &cuts, &expected);
    assert_eq!(common::deployment_versions(&engine), ["2", "1"]);

    // A deployment-list write: the rollback makes v1, still booted, the default again.
    arm(&img);
    deployments::rollback_to_previous(&sysroot).unwrap();
    let cuts = disarm();
    let expected = [
        (faults::ENTRIES_WRITTEN, "2"),
        (faults::FLUSHED, "1"),
        (faults::CLEANED, "1"),
    ];
    check_cuts("rollback", &cuts, &expected);
    assert_eq!(common::deployment_versions(&engine), ["1", "2"]);
    env.fsck();
}

fn check_cuts(what: &str, cuts: &[(String, PathBuf)], expected: &[(&str, &str)]) {
    let points: Vec<&str> = cuts.iter().map(|(p, _)| p.as_str()).collect();
    let reached: Vec<&str> = expected.iter().map(|(p, _)| *p).collect();
    assert_eq!(points, reached, "{what}: the fault points reached");
    // What a power cut at each point boots ("none": the machine does not boot).
    let boots: Vec<(&str, String)> = cuts
        .iter()
        .map(|(point, cut)| {
            let version = boots_from(cut).unwrap_or_else(|| "none".into());
            let _ = std::fs::remove_file(cut);
            (point.as_str(), version)
        })
        .collect();
    let want: Vec<(&str, String)> = expected.iter().map(|(p, v)| (*p, v.to_string())).collect();
    assert_eq!(
        boots, want,
        "{what}: the version a power cut at each point boots"
    );
}
