//! The CLI against a running node: JSON output scripts can parse, and the
//! documented exit codes (0 ok, 2 usage, 3 absent, 4 refused, 5
//! unreachable or unavailable, 7 inconsistent store is covered by the
//! engine's verify tests); then the offline commands on the stopped
//! node's store.

mod common;

use converge_cli::cluster::{Cluster, ClusterOptions};
use std::process::Command;
use std::time::Duration;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli(node: &str, args: &[&str]) -> Out {
    let o = Command::new(common::bin())
        .arg("--node")
        .arg(node)
        .args(args)
        .output()
        .expect("run converge");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json(o: &Out) -> serde_json::Value {
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", o.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 1,
        proxied: false,
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    cl.client(0, Duration::from_secs(30))
        .await
        .expect("node up");
    let node = cl.nodes[0].listen.to_string();
    let n = node.as_str();

    let w = json(&cli(n, &["--json", "incr", "likes", "2"]));
    let token = w["token"].as_str().expect("token").to_string();
    assert!(!token.is_empty());
    let r = json(&cli(
        n,
        &[
            "--json",
            "get",
            "likes",
            "--at-least",
            &token,
            "--wait-ms",
            "1000",
        ],
    ));
    assert_eq!(r["value"], "2");
    assert_eq!(r["type"], "gcounter");
    assert_eq!(cli(n, &["add", "cart", "socks"]).code, 0);
    assert_eq!(cli(n, &["add", "cart", "hat"]).code, 0);
    assert_eq!(cli(n, &["rm", "cart", "socks"]).code, 0);
    let r = json(&cli(n, &["--json", "get", "cart"]));
    assert_eq!(r["value"], serde_json::json!(["hat"]));
    assert_eq!(
        cli(n, &["set", "addr", "1 Main St", "--register", "mv"]).code,
        0
    );
    assert_eq!(
        cli(n, &["set", "addr", "42 Elm Ave", "--register", "mv"]).code,
        0
    );
    let r = json(&cli(n, &["--json", "get", "addr"]));
    assert_eq!(
        r["value"],
        serde_json::json!(["42 Elm Ave"]),
        "an MV write replaces what it read"
    );
    assert_eq!(cli(n, &["incr", "stock", "-3", "--pn"]).code, 0);
    let keys = json(&cli(n, &["--json", "keys"]));
    assert_eq!(keys.as_array().map(Vec::len), Some(4));
    let s = json(&cli(n, &["--json", "status"]));
    assert_eq!(s["keys"], 4);
    // A deleted key reads as absent and leaves the listing.
    assert_eq!(cli(n, &["set", "tmp", "x"]).code, 0);
    assert_eq!(cli(n, &["delete", "tmp", "--mode", "async"]).code, 0);
    assert_eq!(cli(n, &["get", "tmp"]).code, 3);
    assert!(!cli(n, &["keys"]).stdout.contains("tmp"));
    assert_eq!(s["converged"], true, "alone, trivially");

    // 3: absent; 4: refused (wrong type; a bad token); 2: usage.
    assert_eq!(cli(n, &["get", "nothing"]).code, 3);
    let wrong = cli(n, &["incr", "cart"]);
    assert_eq!(wrong.code, 4, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("FailedPrecondition"),
        "{}",
        wrong.stderr
    );
    assert_eq!(cli(n, &["get", "likes", "--at-least", "0102"]).code, 4);
    assert_eq!(cli(n, &["get", "likes", "--at-least", "xyz"]).code, 2);
    assert_eq!(cli(n, &["incr", "likes", "-1"]).code, 2);
    assert_eq!(cli(n, &["frobnicate"]).code, 2);
    let wild = dir.path().join("wild");
    let w = wild.to_string_lossy();
    assert_eq!(
        cli(n, &["serve", "--data", &w, "--listen", "0.0.0.0:7"]).code,
        2
    );
    // 5: a semi-sync write with no live peer (nothing written), a node
    // that is not there.
    assert_eq!(cli(n, &["incr", "likes", "--mode", "semi-sync"]).code, 5);
    assert_eq!(cli("127.0.0.1:1", &["status"]).code, 5);
    let r = json(&cli(n, &["--json", "get", "likes"]));
    assert_eq!(
        r["value"], "2",
        "the refused semi-sync write changed nothing"
    );

    // Offline, on the stopped node's store.
    assert!(cl.terminate(0, Duration::from_secs(15)), "clean SIGTERM");
    let data = cl.nodes[0].data.to_string_lossy().into_owned();
    let v = cli(n, &["verify", &data]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(v.stdout.contains("tree consistent"), "{}", v.stdout);
    let g = cli(n, &["get", "--data", &data, "likes"]);
    assert_eq!((g.code, g.stdout.trim()), (0, "2"));
    let k = cli(n, &["keys", "--data", &data, "ca"]);
    assert_eq!(k.stdout.trim(), "cart\torset");
}

/// Exit code 6: a sync write the peer cannot acknowledge (partitioned,
/// but not yet suspected: probes every 5 s) times out, stays committed
/// locally, and reaches the peer once the partition heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_sync_write_exits_6_and_still_replicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 2,
        proxied: true,
        probe_ms: 5000,
        anti_entropy_ms: 600_000,
        ..ClusterOptions::default()
    };
    let cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    let wait = Duration::from_secs(60);
    cl.wait_alive(0, 1, wait).await.expect("members");
    let n = cl.nodes[0].listen.to_string();
    let ok = cli(
        &n,
        &[
            "add",
            "cart",
            "socks",
            "--mode",
            "sync",
            "--ack-timeout-ms",
            "5000",
        ],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("held by 1 peer)"), "{}", ok.stdout);
    let m = cl.nodes[1].listen.to_string();
    assert_eq!(cli(&n, &["set", "tmp", "v", "--mode", "sync"]).code, 0);
    let del = cli(&n, &["delete", "tmp", "--mode", "sync"]);
    assert!(del.stdout.contains("held by 1 peer)"), "{}", del.stdout);
    assert_eq!(cli(&m, &["get", "tmp"]).code, 3, "the delete replicated");

    cl.faults.partition(&[&[cl.nodes[0].ip], &[cl.nodes[1].ip]]);
    let late = cli(
        &n,
        &[
            "--json",
            "add",
            "cart",
            "hat",
            "--mode",
            "sync",
            "--ack-timeout-ms",
            "300",
        ],
    );
    assert_eq!(
        late.code, 6,
        "stdout {} stderr {}",
        late.stdout, late.stderr
    );
    let here = json(&cli(&n, &["--json", "get", "cart"]));
    assert_eq!(
        here["value"],
        serde_json::json!(["hat", "socks"]),
        "committed locally"
    );

    cl.faults.heal();
    cl.wait_converged(&[0, 1], wait).await.expect("converge");
    let there = json(&cli(&m, &["--json", "get", "cart"]));
    assert_eq!(there["value"], serde_json::json!(["hat", "socks"]));
    let s = json(&cli(&m, &["--json", "status"]));
    assert_eq!(s["members"][0]["root"], s["root"], "{s}");
    assert_eq!(s["converged"], true, "{s}");
}
