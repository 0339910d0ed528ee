//! Bad input at the network edge of a running node: bytes that are not
//! protobuf, oversized payloads, a peer speaking a newer protocol,
//! malformed pages and sync messages, forged tokens. Each gets a typed
//! gRPC status, the node keeps serving, and nothing changes (same root,
//! same key count, same last operation).

mod common;

use common::status;
use converge::codec::encode_context;
use converge::{CausalContext, ReplicaId};
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::replication_client::ReplicationClient;
use converge_cli::proto::{self, op::Kind, ReplicationMode as Mode};
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Sends and receives raw bytes as gRPC messages.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

async fn raw_call(ch: Channel, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut g = tonic::client::Grpc::new(ch);
    g.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    g.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        Raw,
    )
    .await
    .map(|r| r.into_inner())
}

fn write(key: &[u8], kind: Kind) -> proto::WriteRequest {
    proto::WriteRequest {
        ops: vec![proto::Op {
            key: key.to_vec(),
            kind: Some(kind),
        }],
        replication: Mode::Async as i32,
        min_acks: 0,
        ack_timeout_ms: 0,
    }
}

fn expect(what: &str, got: Result<impl std::fmt::Debug, Status>, code: Code) {
    match got {
        Err(s) if s.code() == code => {}
        other => panic!("{what}: expected {code:?}, got {other:?}"),
    }
}

fn read(key: &[u8], at_least: Vec<u8>, timeout_ms: u32) -> proto::ReadRequest {
    proto::ReadRequest {
        key: key.to_vec(),
        at_least,
        timeout_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_typed_status_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 1,
        proxied: false,
        ..ClusterOptions::default()
    };
    let cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    let wait = std::time::Duration::from_secs(30);
    let mut c = cl.client(0, wait).await.expect("client");
    let url = format!("http://{}", cl.nodes[0].listen);
    let ch = Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut peer = ReplicationClient::new(ch.clone()).max_encoding_message_size(100 << 20);

    // Some data first.
    c.write(write(b"cart", Kind::OrsetAdd(b"socks".to_vec())))
        .await
        .expect("write");
    let good = c
        .write(write(b"likes", Kind::Increment(3)))
        .await
        .expect("write")
        .into_inner();
    let before = status(&mut c).await;
    let me = ReplicaId(u128::from_str_radix(&before.replica_id, 16).expect("replica id"));

    // Not protobuf at all.
    // tonic refuses what does not decode with INTERNAL ("failed to
    // decode Protobuf message") before any handler runs.
    let r = raw_call(ch.clone(), "/converge.v1.Converge/Write", vec![0xff; 7]).await;
    expect("not protobuf", r, Code::Internal);
    let r = raw_call(
        ch.clone(),
        "/converge.v1.Replication/Push",
        vec![0x12, 0x50, 1],
    )
    .await;
    expect("truncated push", r, Code::Internal);
    // A message of a newer client: an operation of a kind we do not know
    // (field 99 of Op, skipped by the decoder, leaves no kind).
    let unknown_kind = vec![0x0a, 0x06, 0x0a, 0x01, b'k', 0x98, 0x06, 0x01];
    let r = raw_call(ch.clone(), "/converge.v1.Converge/Write", unknown_kind).await;
    expect("unknown op kind", r, Code::InvalidArgument);
    let mut unknown_mode = write(b"x", Kind::Increment(1));
    unknown_mode.replication = 7;
    expect(
        "unknown mode",
        c.write(unknown_mode).await,
        Code::InvalidArgument,
    );
    let mut long_wait = write(b"x", Kind::Increment(1));
    long_wait.replication = Mode::Sync as i32;
    long_wait.ack_timeout_ms = 40_000;
    expect(
        "ack wait over the limit",
        c.write(long_wait).await,
        Code::InvalidArgument,
    );
    let mut no_ops = write(b"x", Kind::Increment(1));
    no_ops.ops.clear();
    expect(
        "no operations",
        c.write(no_ops).await,
        Code::InvalidArgument,
    );

    // Oversized: over the request limit (tonic refuses it before the
    // handler, with OUT_OF_RANGE), over the value limit, over the key
    // limit.
    let huge = write(b"big", Kind::LwwSet(vec![7; 21 << 20]));
    expect(
        "21 MiB request",
        c.clone()
            .max_encoding_message_size(64 << 20)
            .write(huge)
            .await,
        Code::OutOfRange,
    );
    let big = write(b"big", Kind::LwwSet(vec![7; (16 << 20) + 1]));
    expect(
        "16 MiB + 1 value",
        c.clone()
            .max_encoding_message_size(64 << 20)
            .write(big)
            .await,
        Code::InvalidArgument,
    );
    expect(
        "70 KiB key",
        c.write(write(&vec![b'k'; 70 << 10], Kind::Increment(1)))
            .await,
        Code::InvalidArgument,
    );
    // The wrong type for a key.
    expect(
        "wrong type",
        c.write(write(b"cart", Kind::Increment(1))).await,
        Code::FailedPrecondition,
    );

    // A peer speaking a newer protocol, a malformed page, a bad sender.
    let push = |v: u32, sender: Vec<u8>, changes: Vec<u8>| proto::PushRequest {
        protocol_version: v,
        sender,
        changes,
    };
    let id = ReplicaId(42).to_bytes().to_vec();
    expect(
        "newer protocol",
        peer.push(push(2, id.clone(), vec![])).await,
        Code::FailedPrecondition,
    );
    expect(
        "no protocol",
        peer.push(push(0, id.clone(), vec![])).await,
        Code::InvalidArgument,
    );
    expect(
        "garbage page",
        peer.push(push(1, id.clone(), vec![1, 2, 3, 4])).await,
        Code::InvalidArgument,
    );
    expect(
        "bad sender",
        peer.push(push(1, vec![1, 2, 3], vec![])).await,
        Code::InvalidArgument,
    );
    let oversized_page = push(1, id.clone(), vec![0; 70 << 20]);
    expect(
        "oversized page",
        peer.push(oversized_page).await,
        Code::OutOfRange,
    );

    // Anti-entropy: a newer protocol; then a garbage sync message.
    let frames = |v: u32, m: Vec<u8>| {
        tokio_stream::iter(vec![proto::SyncFrame {
            protocol_version: v,
            message: m,
        }])
    };
    expect(
        "newer sync protocol",
        peer.anti_entropy(frames(99, vec![1])).await.map(|_| ()),
        Code::FailedPrecondition,
    );
    match peer.anti_entropy(frames(1, vec![9; 40])).await {
        Err(s) => assert_eq!(s.code(), Code::InvalidArgument, "{s:?}"),
        Ok(r) => {
            let mut stream = r.into_inner();
            let mut got = None;
            while let Some(item) = tokio_stream::StreamExt::next(&mut stream).await {
                if let Err(s) = item {
                    got = Some(s);
                    break;
                }
            }
            let s = got.expect("the responder must end the session with a status");
            assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        }
    }

    // Forged tokens: bytes that do not decode, operations of this node it
    // never issued, a timeout over the limit; an honest token of an
    // unknown replica is "not yet visible" once the wait runs out.
    expect(
        "garbage token",
        c.read(read(b"likes", vec![2, 0, 1], 0)).await,
        Code::InvalidArgument,
    );
    let mut forged = CausalContext::new();
    forged.insert_range(me, 1, 1_000_000);
    expect(
        "forged own ops",
        c.read(read(b"likes", encode_context(&forged), 100)).await,
        Code::InvalidArgument,
    );
    expect(
        "wait over the limit",
        c.read(read(b"likes", good.token.clone(), 40_000)).await,
        Code::InvalidArgument,
    );
    let mut elsewhere = CausalContext::new();
    elsewhere.insert_range(ReplicaId(7), 1, 3);
    expect(
        "unknown replica's ops",
        c.read(read(b"likes", encode_context(&elsewhere), 100))
            .await,
        Code::DeadlineExceeded,
    );

    // Still serving, nothing changed.
    let after = status(&mut c).await;
    assert_eq!(
        (
            &after.root,
            after.keys,
            after.last_seq,
            after.pending_entries
        ),
        (
            &before.root,
            before.keys,
            before.last_seq,
            before.pending_entries
        )
    );
    let r = c
        .read(read(b"likes", good.token, 1000))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(r.value, Some(proto::read_reply::Value::Counter("3".into())));
}

/// A peer that accepts the connection and then says nothing: the session
/// the node initiates ends (HTTP/2 keep-alive notices the silence:
/// UNAVAILABLE; or the session's idle timeout of four RPC timeouts:
/// DEADLINE_EXCEEDED) instead of hanging, and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_ends_the_session_instead_of_hanging_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 1,
        proxied: false,
        extra: vec!["--rpc-timeout-ms".into(), "300".into()],
        ..ClusterOptions::default()
    };
    let cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    let mut c = cl
        .client(0, std::time::Duration::from_secs(30))
        .await
        .expect("client");
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s); // accepted, never answered
        }
    });
    // A hang is the failure this test looks for; 60 s is far beyond
    // either timeout.
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.sync(proto::SyncRequest {
            peer: addr.to_string(),
        }),
    )
    .await
    .expect("the session hung");
    match r {
        Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => {}
        other => panic!("silent peer: {other:?}"),
    }
    held.abort();
    status(&mut c).await;
}

/// A peer that speaks gRPC, opens the session stream and then never sends
/// a message.
struct Mute;

#[tonic::async_trait]
impl converge_cli::proto::replication_server::Replication for Mute {
    async fn push(
        &self,
        _: tonic::Request<proto::PushRequest>,
    ) -> Result<tonic::Response<proto::PushReply>, Status> {
        Err(Status::unimplemented("mute"))
    }

    type AntiEntropyStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<proto::SyncFrame, Status>> + Send>,
    >;

    async fn anti_entropy(
        &self,
        _: tonic::Request<tonic::Streaming<proto::SyncFrame>>,
    ) -> Result<tonic::Response<Self::AntiEntropyStream>, Status> {
        Ok(tonic::Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// The session's idle timeout (four RPC timeouts) ends a session whose
/// peer keeps the connection alive but never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_peer_ends_the_session_at_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 1,
        proxied: false,
        extra: vec!["--rpc-timeout-ms".into(), "300".into()],
        ..ClusterOptions::default()
    };
    let cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    let mut c = cl
        .client(0, std::time::Duration::from_secs(30))
        .await
        .expect("client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(converge_cli::proto::replication_server::ReplicationServer::new(Mute))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.sync(proto::SyncRequest {
            peer: addr.to_string(),
        }),
    )
    .await
    .expect("the session hung");
    server.abort();
    match r {
        Err(s) if s.code() == Code::DeadlineExceeded => {
            assert!(s.message().contains("silent"), "{s:?}")
        }
        other => panic!("mute peer: {other:?}"),
    }
    status(&mut c).await;
}
