//! Bad input gets a typed error and changes nothing.

mod common;
use common::{dump, engine};
use converge::{Batch, CodecError, CrdtType, Error, MAX_KEY_LEN, MAX_VALUE_LEN};

#[test]
fn wrong_type_is_an_error_and_the_batch_writes_nothing() {
    let a = engine(1);
    a.increment(b"c", 1).unwrap();
    let before = dump(&a);
    let err = a.orset_add(b"c", b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongType {
                stored: CrdtType::GCounter,
                requested: CrdtType::ORSet
            }
        ),
        "{err}"
    );
    let mut b = Batch::new();
    b.increment(b"c", 5)
        .gset_add(b"new", b"x")
        .lww_set(b"c", b"oops");
    assert!(matches!(a.write(&b), Err(Error::WrongType { .. })));
    assert_eq!(dump(&a), before, "nothing of the failed batch was written");
    assert_eq!(a.key_type(b"new").unwrap(), None);
    assert_eq!(a.version_vector().get(a.replica_id()), 1);
    assert!(matches!(
        a.set_members(b"c"),
        Err(Error::WrongReadType {
            stored: CrdtType::GCounter,
            ..
        })
    ));
}

#[test]
fn merging_another_type_is_an_error() {
    let a = engine(1);
    let b = engine(2);
    a.increment(b"k", 1).unwrap();
    let d = b.orset_add(b"k", b"x").unwrap();
    let before = dump(&a);
    assert!(matches!(
        a.merge(b"k", &d.delta.encode()),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(dump(&a), before);
}

#[test]
fn oversized_key_and_value() {
    let a = engine(1);
    let key = vec![b'k'; MAX_KEY_LEN + 1];
    assert!(matches!(
        a.increment(&key, 1),
        Err(Error::KeyTooLarge { .. })
    ));
    let val = vec![0u8; MAX_VALUE_LEN + 1];
    assert!(matches!(
        a.lww_set(b"k", &val),
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(dump(&a).is_empty());
    a.increment(&vec![b'k'; MAX_KEY_LEN], 1).unwrap();
}

#[test]
fn truncated_corrupted_and_unknown_version_bytes() {
    let a = engine(1);
    let b = engine(2);
    a.orset_add(b"s", b"x").unwrap();
    let good = b.orset_add(b"s", b"y").unwrap().delta.encode();
    let before = dump(&a);
    for cut in 0..good.len() {
        let err = a.merge(b"s", &good[..cut]).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "cut {cut}: {err}");
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let err = a.merge(b"s", &bad).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "flip {i}: {err}");
    }
    // An intact frame of another format version.
    let mut v2 = good[..good.len() - 4].to_vec();
    v2[0] = 2;
    let sum = (xxhash_rust::xxh3::xxh3_64(&v2) as u32).to_le_bytes();
    v2.extend_from_slice(&sum);
    assert!(matches!(
        a.merge(b"s", &v2),
        Err(Error::Codec(CodecError::UnknownVersion { found: 2, .. }))
    ));
    // A bad merge inside a batch aborts the whole batch.
    let mut batch = Batch::new();
    batch
        .increment(b"other", 1)
        .merge(b"s", &good[..good.len() - 1]);
    assert!(a.write(&batch).is_err());
    assert_eq!(dump(&a), before);
    a.merge(b"s", &good).unwrap();
    assert_eq!(a.set_members(b"s").unwrap().members.len(), 2);
}

#[test]
fn counter_overflow_is_an_error() {
    let a = engine(1);
    a.increment(b"c", u64::MAX).unwrap();
    let before = dump(&a);
    assert!(matches!(a.increment(b"c", 1), Err(Error::Overflow)));
    assert_eq!(dump(&a), before);
    // Within a batch (the increments build on this replica's known entry,
    // without reading the state): the batch changes nothing.
    let mut batch = Batch::new();
    batch.increment(b"d", u64::MAX - 1).increment(b"d", 1);
    a.write(&batch).unwrap();
    let before = dump(&a);
    let mut batch = Batch::new();
    batch
        .increment(b"e", 1)
        .increment(b"d", 0)
        .increment(b"d", 1);
    assert!(matches!(a.write(&batch), Err(Error::Overflow)));
    assert_eq!(dump(&a), before);
}

#[test]
fn pn_counter_overflow_is_an_error_either_way() {
    let a = engine(1);
    a.pn_add(b"p", i64::MAX).unwrap();
    a.pn_add(b"p", i64::MAX).unwrap();
    a.pn_add(b"p", i64::MIN).unwrap();
    let before = dump(&a);
    // Increments: 2^64 - 2 counted, 2 more overflow; decrements: 2^63
    // counted, 2^63 more overflow.
    assert!(matches!(a.pn_add(b"p", 2), Err(Error::Overflow)));
    assert!(matches!(a.pn_add(b"p", i64::MIN), Err(Error::Overflow)));
    let mut batch = Batch::new();
    batch.pn_add(b"p", 1).pn_add(b"p", -5).pn_add(b"p", 1);
    assert!(matches!(a.write(&batch), Err(Error::Overflow)));
    assert_eq!(dump(&a), before);
    // What fits still counts.
    a.pn_add(b"p", 1).unwrap();
    assert_eq!(a.counter_value(b"p").unwrap(), i64::MAX as i128);
}
