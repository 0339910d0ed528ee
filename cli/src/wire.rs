//! Conversions between the wire messages of `proto/converge.proto` and the
//! engine's types, shared by the node and the client. Bytes from the
//! network are decoded here and refused with a typed error.

use crate::proto;
use converge::codec::{decode_context, encode_context};
use converge::{Batch, CausalContext, CodecError, CrdtType, Op, Value};

/// Operations one `Write` request may carry at most.
pub const MAX_OPS_PER_WRITE: usize = 10_000;

/// A request that cannot be turned into engine input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A context field does not decode.
    #[error("field `{field}` is not a valid causal context: {source}")]
    Context {
        /// The field.
        field: &'static str,
        /// Why.
        source: CodecError,
    },
    /// A state field does not decode.
    #[error("field `{field}` is not a valid encoded state: {source}")]
    State {
        /// The field.
        field: &'static str,
        /// Why.
        source: CodecError,
    },
    /// An operation without a kind (an unknown one, from a newer client).
    #[error("operation {0} has no kind this node knows")]
    NoKind(usize),
    /// A write without operations, or with too many.
    #[error("a write carries 1 to {max} operations, this one {n}", max = MAX_OPS_PER_WRITE)]
    OpCount {
        /// How many it carried.
        n: usize,
    },
}

/// A context field: empty bytes are the empty context.
pub fn context(bytes: &[u8], field: &'static str) -> Result<CausalContext, WireError> {
    if bytes.is_empty() {
        return Ok(CausalContext::new());
    }
    decode_context(bytes).map_err(|source| WireError::Context { field, source })
}

/// A context as wire bytes (empty for the empty context).
pub fn context_bytes(ctx: &CausalContext) -> Vec<u8> {
    if ctx.is_empty() {
        Vec::new()
    } else {
        encode_context(ctx)
    }
}

/// The batch a `Write` request stands for.
pub fn batch(ops: Vec<proto::Op>) -> Result<Batch, WireError> {
    if ops.is_empty() || ops.len() > MAX_OPS_PER_WRITE {
        return Err(WireError::OpCount { n: ops.len() });
    }
    use proto::op::Kind;
    let mut b = Batch::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let kind = op.kind.ok_or(WireError::NoKind(i))?;
        let o = match kind {
            Kind::Increment(n) => Op::Increment(n),
            Kind::PnAdd(n) => Op::PnAdd(n),
            Kind::GsetAdd(e) => Op::GSetAdd(e),
            Kind::TwopAdd(e) => Op::TwoPAdd(e),
            Kind::TwopRemove(e) => Op::TwoPRemove(e),
            Kind::OrsetAdd(e) => Op::OrAdd(e),
            Kind::OrsetRemove(r) => {
                let observed = if r.observed.is_empty() {
                    None
                } else {
                    Some(context(&r.observed, "orset_remove.observed")?)
                };
                Op::OrRemove(r.element, observed)
            }
            Kind::LwwSet(v) => Op::LwwSet(v),
            Kind::FwwSet(v) => Op::FwwSet(v),
            Kind::MvWrite(w) => Op::MvWrite(w.value, context(&w.context, "mv_write.context")?),
            Kind::Delete(d) => Op::Delete(if d.observed.is_empty() {
                None
            } else {
                Some(
                    converge::codec::decode_state(&d.observed).map_err(|source| {
                        WireError::State {
                            field: "delete.observed",
                            source,
                        }
                    })?,
                )
            }),
        };
        b.push(op.key, o);
    }
    Ok(b)
}

/// The wire form of a value.
pub fn value(v: Value) -> proto::read_reply::Value {
    use proto::read_reply::Value as V;
    match v {
        Value::Counter(n) => V::Counter(n.to_string()),
        Value::Set(s) => V::Set(proto::SetValue {
            members: s.members,
            context: context_bytes(&s.context),
        }),
        Value::Register(r) => V::Register(match r {
            None => proto::RegisterValue::default(),
            Some(w) => proto::RegisterValue {
                present: true,
                value: w.value,
                wall_ms: w.ts.wall_ms,
                logical: w.ts.logical,
                writer: w.replica.to_string(),
            },
        }),
        Value::Mv(m) => V::Mv(proto::MvValue {
            siblings: m
                .siblings
                .into_iter()
                .map(|s| proto::Sibling {
                    value: s.value,
                    writer: s.dot.replica.to_string(),
                    counter: s.dot.counter,
                })
                .collect(),
            context: context_bytes(&m.context),
        }),
    }
}

/// A human-readable rendering of a read (the CLI's output).
pub fn show(reply: &proto::ReadReply) -> String {
    use proto::read_reply::Value as V;
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if !reply.found {
        return "(absent)".into();
    }
    match &reply.value {
        Some(V::Counter(n)) => n.clone(),
        Some(V::Set(set)) => {
            let m: Vec<String> = set.members.iter().map(|e| s(e)).collect();
            format!("{{{}}}", m.join(", "))
        }
        Some(V::Register(r)) if r.present => format!("{:?}", s(&r.value)),
        Some(V::Register(_)) => "(unset)".into(),
        Some(V::Mv(mv)) => {
            let m: Vec<String> = mv
                .siblings
                .iter()
                .map(|x| format!("{:?}", s(&x.value)))
                .collect();
            if m.len() == 1 {
                m[0].clone()
            } else {
                format!("{} siblings: [{}]", m.len(), m.join(", "))
            }
        }
        None => "(no value)".into(),
    }
}

/// A CRDT type's wire name.
pub fn type_name(t: CrdtType) -> String {
    t.name().to_string()
}

/// Lower-case hex of bytes (tokens on the command line).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from lower-case or upper-case hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_bad_digits() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn a_bad_context_or_an_empty_write_is_refused() {
        assert!(matches!(
            context(&[9, 9, 9], "at_least"),
            Err(WireError::Context {
                field: "at_least",
                ..
            })
        ));
        assert!(context(&[], "x").is_ok_and(|c| c.is_empty()));
        assert!(matches!(batch(vec![]), Err(WireError::OpCount { n: 0 })));
        let no_kind = proto::Op {
            key: b"k".to_vec(),
            kind: None,
        };
        assert!(matches!(batch(vec![no_kind]), Err(WireError::NoKind(0))));
    }
}
