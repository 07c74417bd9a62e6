//! The scenarios, briefly, against the real gateway served in-process on
//! 127.0.0.1: real sockets, real handshakes, real outcomes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sockgate::config::Secret;
use sockgate::revocation::Revocations;
use sockgate::{Gateway, Lifecycle, app};
use sockgate_auth::{Rules, SourcePolicy, Verifier, VerifyKey};
use sockgate_bench::fleet::Pace;
use sockgate_bench::scenarios::*;
use sockgate_bench::{Client, Minter, Setup, Tokens};

const SECRET: &str = "bench-test-secret-bench-test-secret!";
const API_KEY: &str = "bench-test-api-key-0123456789";

/// Serves a fresh gateway (HS256 with `SECRET`, admin API with `API_KEY`).
async fn serve() -> SocketAddr {
    let rules = Rules::default();
    let key = VerifyKey::hmac(SECRET.as_bytes(), &rules).unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("sockgate-bench-it-{nanos}"));
    let revocations = Revocations::open(&dir).await.unwrap();
    let gateway = Gateway::new(
        Verifier::new(rules).with_hmac(key),
        SourcePolicy::default(),
        revocations,
        Lifecycle::default(),
    );
    let (router, _io) = app(Arc::new(gateway), Some(Secret(API_KEY.into())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

fn setup(addr: SocketAddr) -> Setup {
    let client = Client::new(&format!("http://{addr}"), 4).unwrap();
    let mut s = Setup::new(
        client,
        Tokens::Mint(Minter::new(SECRET, Duration::from_secs(600))),
    );
    s.timeout = Duration::from_secs(60);
    s
}

fn pace(concurrency: usize) -> Pace {
    Pace {
        concurrency,
        rate: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_opens_every_connection() {
    let s = setup(serve().await);
    let cfg = ConnectConfig {
        connections: 200,
        pace: pace(50),
    };
    let r = connect(&s, &cfg).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.dropped), (200, 0));
    let lat = r.latency.expect("latencies");
    assert_eq!(lat.count, 200);
    assert!(lat.min_us > 0 && lat.p50_us <= lat.p99_us && lat.p99_us <= lat.max_us);
    assert!(r.connections_per_s > 0.0);
    let report = r.report(&s, &cfg);
    assert!(report.ok, "{}", report.table());
    // Source addresses beyond 127.0.0.1 were used.
    assert_eq!(s.client.sources.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_at_a_rate_takes_the_time_it_should() {
    let s = setup(serve().await);
    let cfg = ConnectConfig {
        connections: 40,
        pace: Pace {
            concurrency: 10,
            rate: Some(100.0),
        },
    };
    let r = connect(&s, &cfg).await;
    assert_eq!(r.connected, 40, "{:?}", r.errors);
    // 40 starts at 100/s: the last one starts 0.39 s after the first.
    assert!(r.elapsed_s >= 0.39, "{}", r.elapsed_s);
    // Reported apart from unpaced runs, so a comparison can hold both.
    let report = r.report(&s, &cfg);
    assert_eq!(report.scenario, "connect-paced");
    let p99 = report
        .metrics
        .iter()
        .find(|m| m.key == "connect-paced.latency.p99");
    assert!(p99.and_then(|m| m.value).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_is_counted_not_hidden() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = setup(port); // nothing listens there any more
    let r = connect(
        &s,
        &ConnectConfig {
            connections: 5,
            pace: pace(5),
        },
    )
    .await;
    assert_eq!(r.connected, 0);
    assert_eq!(
        r.errors.get("ERR_TCP_CONNECT: connection refused"),
        5,
        "{:?}",
        r.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_refuses_every_bad_token_with_its_code() {
    let s = setup(serve().await);
    let cfg = RejectConfig {
        attempts: 90,
        pace: pace(30),
    };
    let r = reject(&s, &cfg).await.unwrap();
    assert_eq!(r.accepted, 0);
    assert_eq!(r.refused, 90, "{:?}", r.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.by_kind["bad-signature"].get("TOKEN_INVALID"), 30);
    assert_eq!(r.by_kind["expired"].get("TOKEN_EXPIRED"), 30);
    assert_eq!(r.by_kind["unsigned"].get("TOKEN_INVALID"), 30);
    let report = r.report(&s, &cfg);
    assert!(report.ok && report.failure.is_none(), "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_gets_every_ack_back() {
    let s = setup(serve().await);
    let cfg = EchoConfig {
        connections: 20,
        messages: 50,
        window: 8,
        pace: pace(20),
    };
    let r = echo(&s, &cfg).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.sent, r.acked), (20, 1000, 1000));
    assert_eq!(r.rtt.unwrap().count, 1000);
    assert!(r.messages_per_s > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_succeeds_every_time() {
    let s = setup(serve().await);
    let cfg = RefreshConfig {
        connections: 10,
        refreshes: 5,
        pace: pace(10),
    };
    let r = refresh(&s, &cfg).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.refreshed, 50);
    assert!(r.report(&s, &cfg).ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_counts_refusals_by_code() {
    // Tokens minted with another secret connect nowhere: the scenario
    // reports the refused handshakes rather than pretending.
    let addr = serve().await;
    let mut s = setup(addr);
    s.tokens = Tokens::Mint(Minter::new(
        "some-other-secret-some-other-secret!!",
        Duration::from_secs(600),
    ));
    let r = refresh(
        &s,
        &RefreshConfig {
            connections: 3,
            refreshes: 2,
            pace: pace(3),
        },
    )
    .await
    .unwrap();
    assert_eq!(r.connected, 0);
    assert_eq!(r.errors.get("TOKEN_INVALID"), 3, "{:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reaches_every_member() {
    let s = setup(serve().await);
    let cfg = FanoutConfig {
        members: 50,
        messages: 10,
        user: "fanout".into(),
        room: None,
        event: "bench".into(),
        message_timeout: Duration::from_secs(5),
        pace: pace(50),
        api_key: API_KEY.into(),
    };
    let r = fanout(&s, &cfg).await;
    assert_eq!(r.failure, None);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.published, r.completed), (50, 10, 10));
    assert_eq!(r.delivery.unwrap().count, 500);
    let all = r.all_members.unwrap();
    assert!(all.p50_us >= r.delivery.unwrap().p50_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_with_a_wrong_key_fails_loudly() {
    let s = setup(serve().await);
    let r = fanout(
        &s,
        &FanoutConfig {
            members: 2,
            messages: 3,
            user: "fanout".into(),
            room: None,
            event: "bench".into(),
            message_timeout: Duration::from_secs(2),
            pace: pace(2),
            api_key: "wrong-key-wrong-key-wrong".into(),
        },
    )
    .await;
    let failure = r.failure.expect("a failure");
    assert!(failure.contains("HTTP 401"), "{failure}");
    assert_eq!(r.errors.get("ERR_PUBLISH: HTTP 401"), 1);
    assert_eq!(r.completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_ends_every_socket_of_the_token() {
    let s = setup(serve().await);
    let cfg = RevokeConfig {
        connections: 30,
        rounds: 2,
        pace: pace(30),
        wait: Duration::from_secs(10),
        api_key: API_KEY.into(),
    };
    let r = revoke(&s, &cfg).await.unwrap();
    assert_eq!(r.failure, None);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.ended, r.ended_by_api), (60, 60, Some(60)));
    assert_eq!(r.latency.unwrap().count, 60);
    assert_eq!(r.remote_latency, None, "one node: nothing is remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_alternate_between_nodes_and_remote_ones_are_told_apart() {
    // Two gateways that are not a cluster: a revocation on the first
    // cannot reach the second, so exactly the sockets sent there stay.
    let mut s = setup(serve().await);
    let other = Client::new(&format!("http://{}", serve().await), 4).unwrap();
    s.peers.push(Arc::new(other));
    let cfg = RevokeConfig {
        connections: 20,
        rounds: 1,
        pace: pace(20),
        wait: Duration::from_secs(1),
        api_key: API_KEY.into(),
    };
    let r = revoke(&s, &cfg).await.unwrap();
    assert_eq!(r.failure, None);
    assert_eq!((r.connected, r.ended, r.ended_by_api), (20, 10, Some(10)));
    assert_eq!(
        r.errors.get("ERR_TIMEOUT: no session:end"),
        10,
        "{:?}",
        r.errors
    );
    assert_eq!(
        r.remote_latency, None,
        "no socket on the second node was reached"
    );
    let report = r.report(&s, &cfg);
    assert!(!report.ok);
    assert!(
        report
            .metrics
            .iter()
            .any(|m| m.key == "revoke.remote.p99" && m.value.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_measures_memory_of_a_process() {
    let s = setup(serve().await);
    let cfg = HoldConfig {
        connections: 30,
        pace: pace(30),
        hold: Duration::from_millis(600),
        // The server runs in this very process.
        server_pid: Some(std::process::id()),
        sample_every: Duration::from_millis(200),
    };
    let r = hold(&s, &cfg).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.connected, r.dropped), (30, 0));
    assert!(r.server_rss_before.is_some() && r.server_rss_held.is_some());
    assert!(
        r.server_rss_samples.len() >= 2,
        "{:?}",
        r.server_rss_samples
    );
    assert!(r.server_bytes_per_connection.is_some());
    assert!(r.held_s >= 0.6);
}
