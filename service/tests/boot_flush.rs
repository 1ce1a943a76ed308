//! The boot flush against a real ext4 filesystem on a loop device, read back the way a
//! bootloader reads it: with debugfs, which does not replay the journal.

mod common;

use berth_engine::bootflush::{self, Flush};
use std::path::Path;
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

/// What /loader points to, as the raw disk says.
fn loader_on_disk(img: &Path) -> String {
    let out = run(Command::new("debugfs")
        .args(["-R", "stat /loader"])
        .arg(img));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Fast link dest: \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("no symlink in: {out}"))
}

struct Mounted<'a>(&'a Path);
impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_loader_swap_reaches_the_raw_disk_only_after_the_flush() {
    let dir = common::test_root().join("boot-flush");
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("boot.img");
    let mnt = dir.join("boot");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("truncate").args(["-s", "64M"]).arg(&img));
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt));
    let _umount = Mounted(&mnt);

    // The state before the update, flushed: /loader -> loader.0.
    std::fs::create_dir(mnt.join("loader.0")).unwrap();
    std::os::unix::fs::symlink("loader.0", mnt.join("loader")).unwrap();
    assert_eq!(bootflush::flush(&mnt).unwrap(), Flush::Checkpoint);
    assert_eq!(loader_on_disk(&img), "loader.0");

    // ostree's swap: a new symlink renamed over the old one, and the directory fsynced. The
    // rename is committed to the journal, which the bootloader does not read.
    std::fs::create_dir(mnt.join("loader.1")).unwrap();
    std::os::unix::fs::symlink("loader.1", mnt.join("loader.tmp")).unwrap();
    std::fs::rename(mnt.join("loader.tmp"), mnt.join("loader")).unwrap();
    std::fs::File::open(&mnt).unwrap().sync_all().unwrap();
    assert_eq!(
        loader_on_disk(&img),
        "loader.0",
        "the premise: fsync alone is not enough"
    );

    assert_eq!(bootflush::flush(&mnt).unwrap(), Flush::Checkpoint);
    assert_eq!(loader_on_disk(&img), "loader.1");
}

#[test]
fn a_filesystem_without_a_journal_is_synced() {
    let dir = common::test_root().join("boot-flush-tmpfs");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(bootflush::flush(&dir).unwrap(), Flush::Sync);
}
