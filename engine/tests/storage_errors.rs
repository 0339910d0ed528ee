//! RocksDB's failures keep their kind: a directory locked by another open
//! engine, damaged files, and the rest.

mod common;
use common::small_options;
use converge::{Engine, Error};
use std::path::Path;

#[test]
fn a_second_open_of_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = Engine::open(dir.path(), small_options(1)).unwrap();
    let err = Engine::open(dir.path(), small_options(1)).err().unwrap();
    assert!(matches!(err, Error::Locked(_)), "{err:?}");
    assert!(err.to_string().contains("LOCK"), "{err}");
    first.close().unwrap();
    // Released with the engine.
    Engine::open(dir.path(), small_options(1))
        .unwrap()
        .close()
        .unwrap();
}

/// Overwrite `len` bytes in the middle of `path`.
fn damage(path: &Path, len: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    let end = (mid + len).min(bytes.len());
    for b in &mut bytes[mid..end] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_current_file_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    Engine::open(dir.path(), small_options(1))
        .unwrap()
        .close()
        .unwrap();
    // CURRENT names the live MANIFEST, ending with a newline.
    std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-garbage").unwrap();
    let err = Engine::open(dir.path(), small_options(1)).err().unwrap();
    assert!(matches!(err, Error::Corruption(_)), "{err:?}");
}

#[test]
fn a_damaged_table_file_is_corruption_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| format!("key-{i:06}").into_bytes())
        .collect();
    {
        let e = Engine::open(dir.path(), small_options(1)).unwrap();
        for k in &keys {
            e.lww_set(k, &[7u8; 100]).unwrap();
        }
        e.flush().unwrap();
        e.close().unwrap();
    }
    let tables: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    assert!(!tables.is_empty(), "the flush wrote table files");
    for t in &tables {
        damage(t, 64);
    }
    // The open may already read a damaged block (the tree, the metadata);
    // otherwise reading every key must meet it.
    let err = match Engine::open(dir.path(), small_options(1)) {
        Err(e) => e,
        Ok(e) => keys
            .iter()
            .find_map(|k| e.state_bytes(k).err())
            .expect("a read of a damaged block fails"),
    };
    assert!(matches!(err, Error::Corruption(_)), "{err:?}");
}

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted on drop; None
/// where this process may not mount (not root, no CAP_SYS_ADMIN).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A full disk is `NoSpace` (RocksDB's `IOError` with subcode `kNoSpace`,
/// from `ENOSPC`), and the failed write poisons the engine. Needs the
/// privilege to mount a tmpfs: without it the test says so and checks
/// nothing (set CONVERGE_REQUIRE_MOUNT=1 to make that a failure).
#[test]
fn a_full_disk_is_no_space_and_poisons_the_engine() {
    let Some(disk) = SmallDisk::mount(6 << 20) else {
        assert!(
            std::env::var_os("CONVERGE_REQUIRE_MOUNT").is_none(),
            "cannot mount a tmpfs"
        );
        eprintln!("skipped: this process cannot mount a tmpfs");
        return;
    };
    let mut opts = small_options(1);
    opts.durability = converge::Durability::Sync;
    let e = Engine::open(disk.dir.path().join("s"), opts).unwrap();
    let value = vec![0x5au8; 64 << 10];
    let mut acknowledged = 0;
    let err = loop {
        match e.lww_set(format!("k{acknowledged}").as_bytes(), &value) {
            Ok(_) => acknowledged += 1,
            Err(err) => break err,
        }
        assert!(acknowledged < 1000, "6 MiB cannot hold 64 MB");
    };
    assert!(matches!(err, Error::NoSpace(_)), "{err:?}");
    assert!(matches!(e.lww_set(b"again", b"x"), Err(Error::Poisoned)));
    assert!(acknowledged > 0);
    drop(e);
    drop(disk);
}
