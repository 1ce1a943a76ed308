//! The boot flush against a real ext4 filesystem on a loop device. A power cut is a copy of
//! the disk image taken while it is mounted; the bootloader's view of it is read with
//! debugfs, which (like GRUB) does not replay the journal, and the kernel's view after the
//! journal is replayed (e2fsck -E journal_only), as the next boot's mount would.

mod common;

use berth_engine::bootflush::{self, Flush};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    // -c: without the allocation bitmaps, as a bootloader reads the disk.
    let out = Command::new("debugfs")
        .args(["-c", "-R", &format!("stat {link}")])
        .arg(img)
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Fast link dest: \""))
        .map(|l| l.trim_end_matches('"').to_string())
}

/// A freshly made ext4 filesystem, loop-mounted, as ostree leaves it before an update:
/// /loader -> loader.0, whose entries boot /ostree/boot.0; everything flushed.
struct Disk {
    img: PathBuf,
    mnt: PathBuf,
}

impl Disk {
    fn new(name: &str) -> Disk {
        let dir = common::test_root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (img, mnt) = (dir.join("disk.img"), dir.join("mnt"));
        std::fs::create_dir_all(&mnt).unwrap();
        run(Command::new("truncate").args(["-s", "64M"]).arg(&img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        let disk = Disk { img, mnt };
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
        let st = Command::new("e2fsck")
            .args(["-y", "-E", "journal_only"])
            .arg(&replayed)
            .output()
            .expect("e2fsck");
        assert!(
            st.status.code().is_some_and(|c| c <= 1),
            "e2fsck: {}",
            String::from_utf8_lossy(&st.stderr)
        );
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

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn fsync_alone_leaves_the_bootloader_on_entries_the_kernel_has_deleted() {
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
    let dir = common::test_root().join("boot-flush-tmpfs");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(bootflush::flush(&dir).unwrap(), Flush::Sync);
}
