//! A realistic OS image, deterministic: ~537 MB uncompressed in 5 layers, ~22,000 files, with
//! the size mix of a small distribution (many small text files, some libraries, a few big
//! binaries) and content that compresses about 2:1 like real binaries and text do.

use berth_testkit::image::{noise, Entry, Image, Layer};

/// One layer's shape: where its files go, how many, and their total size.
struct Shape {
    dir: &'static str,
    files: usize,
    bytes: usize,
}

const SHAPES: [Shape; 5] = [
    Shape {
        dir: "usr/lib/base",
        files: 9000,
        bytes: 220 << 20,
    },
    Shape {
        dir: "usr/lib/libs",
        files: 6000,
        bytes: 140 << 20,
    },
    Shape {
        dir: "usr/lib/modules/6.1.0-bench/kernel",
        files: 1500,
        bytes: 48 << 20,
    },
    Shape {
        dir: "usr/share/tools",
        files: 4000,
        bytes: 70 << 20,
    },
    Shape {
        dir: "usr/share/app",
        files: 1600,
        bytes: 47 << 20,
    },
];

/// The layer an incremental update changes (the application layer on top).
pub const CHANGED_LAYER: usize = 4;

/// Half noise, half text-like runs: gzip gets roughly 2:1, as on a real /usr.
fn content(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"config ",
        b"library ",
        b"function ",
        b"return ",
        b"value\n",
        b"the ",
    ];
    let mut out = noise(seed, len);
    let mut x = seed | 1;
    let mut i = 0;
    while i < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let run = 64 + (x % 448) as usize;
        // Every other run becomes text.
        if (x >> 20) & 1 == 0 {
            let mut j = i;
            let mut w = (x >> 32) as usize;
            while j < (i + run).min(len) {
                let word = WORDS[w % WORDS.len()];
                let n = word.len().min(len - j);
                out[j..j + n].copy_from_slice(&word[..n]);
                j += n;
                w = w.wrapping_mul(31).wrapping_add(7);
            }
        }
        i += run;
    }
    out
}

/// File sizes for a layer: a skewed mix summing to about `total`.
fn sizes(files: usize, total: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    let weights: Vec<u64> = (0..files)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly small files, a tail of large ones.
            match x % 100 {
                0..=69 => 1 + x % 8,
                70..=94 => 8 + x % 64,
                _ => 64 + x % 1024,
            }
        })
        .collect();
    let sum: u64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| ((*w as u128 * total as u128) / sum as u128) as usize)
        .collect()
}

fn parents(path: &str, into: &mut Vec<Entry>, seen: &mut std::collections::BTreeSet<String>) {
    let mut acc = String::new();
    for part in path.split('/') {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        if seen.insert(acc.clone()) {
            into.push(Entry::Dir(acc.clone()));
        }
    }
}

fn layer(index: usize, generation: u64) -> Layer {
    let shape = &SHAPES[index];
    let mut entries = Vec::new();
    let mut seen = Default::default();
    let seed = 1 + index as u64 * 1_000_003 + generation * 7_000_009;
    for (i, size) in sizes(shape.files, shape.bytes, seed)
        .into_iter()
        .enumerate()
    {
        let dir = format!("{}/d{:03}", shape.dir, i / 60);
        parents(&dir, &mut entries, &mut seen);
        let path = format!("{dir}/f{i:05}");
        entries.push(Entry::File(path, content(seed + i as u64, size), 0o644));
    }
    match index {
        0 => {
            parents("etc", &mut entries, &mut seen);
            for i in 0..200 {
                entries.push(Entry::File(format!("etc/conf{i}"), content(i, 700), 0o644));
            }
            let os_release = b"NAME=\"Berth bench OS\"\nID=berth-bench\nVERSION_ID=1\n";
            entries.push(Entry::File(
                "etc/os-release".into(),
                os_release.to_vec(),
                0o644,
            ));
        }
        2 => {
            let kernel = "usr/lib/modules/6.1.0-bench/vmlinuz";
            entries.push(Entry::File(kernel.into(), content(seed, 12 << 20), 0o644));
            let initrd = "usr/lib/modules/6.1.0-bench/initramfs.img";
            entries.push(Entry::File(
                initrd.into(),
                content(seed + 1, 8 << 20),
                0o644,
            ));
        }
        _ => {}
    }
    Layer::new(entries)
}

/// Version 1 of the image, and version 2 where only the application layer changed.
pub fn images() -> (Image, Image) {
    let v1: Vec<Layer> = (0..SHAPES.len()).map(|i| layer(i, 0)).collect();
    let mut v2 = v1.clone();
    v2[CHANGED_LAYER] = layer(CHANGED_LAYER, 1);
    (Image::new("1", v1), Image::new("2", v2))
}
