//! The demo OS used by tests and the demo: versions 1, 2, 3 of a tiny "bootable" image, built
//! the way container tooling lays images out (`/etc`, `/var` at the top, several layers).

use crate::image::{file, noise, Entry, Image, Layer};

pub const KERNEL_VERSION: &str = "6.1.0-berth";

/// Layer 1: the base OS (kernel, /etc defaults, /var seed, a payload).
pub fn base_layer() -> Layer {
    let k = format!("usr/lib/modules/{KERNEL_VERSION}");
    Layer::new(vec![
        Entry::Dir("usr".into()),
        Entry::Dir("usr/bin".into()),
        Entry::Dir("usr/lib".into()),
        Entry::Dir("usr/lib/modules".into()),
        Entry::Dir(k.clone()),
        Entry::File(format!("{k}/vmlinuz"), noise(1, 64 * 1024), 0o644),
        Entry::File(format!("{k}/initramfs.img"), noise(2, 32 * 1024), 0o644),
        Entry::File(
            "usr/bin/berth-demo".into(),
            b"#!/bin/sh\necho demo\n".to_vec(),
            0o755,
        ),
        Entry::Hardlink(
            "usr/bin/berth-demo-alias".into(),
            "usr/bin/berth-demo".into(),
        ),
        Entry::Symlink("bin".into(), "usr/bin".into()),
        Entry::Dir("usr/share".into()),
        Entry::Dir("usr/share/doc".into()),
        file("usr/share/doc/obsolete.txt", "removed in v2\n"),
        Entry::Dir("usr/share/payload".into()),
        Entry::File(
            "usr/share/payload/base.bin".into(),
            noise(3, 512 * 1024),
            0o644,
        ),
        Entry::Dir("etc".into()),
        file("etc/berth-demo.conf", "setting=default\n"),
        file("etc/hostname", "berth-demo\n"),
        Entry::Symlink("etc/localtime".into(), "/usr/share/zoneinfo/UTC".into()),
        Entry::Dir("var".into()),
        Entry::Dir("var/lib".into()),
        Entry::Dir("var/lib/demo".into()),
        file("var/lib/demo/seed", "from the image\n"),
    ])
}

/// Layer 2: the "application", different in every version.
pub fn app_layer(version: u32) -> Layer {
    let mut entries = vec![
        Entry::Dir("usr".into()),
        Entry::Dir("usr/lib".into()),
        file(
            "usr/lib/os-release",
            format!("NAME=BerthDemo\nPRETTY_NAME=\"Berth Demo OS {version}\"\nID=berth-demo\nVERSION_ID={version}\n"),
        ),
        Entry::Dir("usr/share".into()),
        Entry::Dir("usr/share/payload".into()),
        Entry::File(
            "usr/share/payload/app.bin".into(),
            noise(100 + version as u64, 256 * 1024),
            0o644,
        ),
    ];
    if version >= 2 {
        entries.extend([
            Entry::Dir("usr/share/doc".into()),
            Entry::Whiteout("usr/share/doc/obsolete.txt".into()),
            Entry::Dir("etc".into()),
            file(
                "etc/berth-demo.conf",
                format!("setting=default-v{version}\n"),
            ),
            file("etc/new-in-v2.conf", "new=yes\n"),
            Entry::Dir("usr/lib/bootc".into()),
            Entry::Dir("usr/lib/bootc/kargs.d".into()),
            file(
                "usr/lib/bootc/kargs.d/10-demo.toml",
                "kargs = [\"berth.demo=1\"]\n",
            ),
        ]);
    }
    Layer::new(entries)
}

pub fn version(v: u32) -> Image {
    Image::new(&v.to_string(), vec![base_layer(), app_layer(v)])
}
