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
