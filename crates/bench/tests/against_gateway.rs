//! The scenarios, briefly, against the real gateway served in-process on
//! 127.0.0.1: real sockets, real handshakes, real outcomes. `reconnect`
//! restarts a server, so it runs against the real `sockgate` binary
//! (target/debug/sockgate, built by `cargo build --workspace`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sockgate::config::Secret;
use sockgate::store::{OnDisk, Revocations};
use sockgate::{Gateway, Lifecycle, app};
use sockgate_auth::{Rules, SourcePolicy, Verifier, VerifyKey};
use sockgate_bench::fleet::Pace;
use sockgate_bench::scenarios::*;
use sockgate_bench::{Client, Minter, Setup, Tokens};
use sockgate_engine::engine::Compression;

const SECRET: &str = "bench-test-secret-bench-test-secret!";
const API_KEY: &str = "bench-test-api-key-0123456789";

/// Serves a fresh gateway (HS256 with `SECRET`, admin API with `API_KEY`).
async fn serve() -> SocketAddr {
    serve_with(None).await
}

/// A gateway compressing WebSocket messages as `compression` says.
async fn serve_with(compression: Option<Compression>) -> SocketAddr {
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
    )
    .with_ws_compression(compression);
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
async fn compressed_echoes_round_trip_in_fewer_bytes_than_they_carry() {
    let addr = serve_with(Some(Compression::default())).await;
    let mut client = Client::new(&format!("http://{addr}"), 4).unwrap();
    client.compress = true;
    let mut s = Setup::new(
        client,
        Tokens::Mint(Minter::new(SECRET, Duration::from_secs(600))),
    );
    s.timeout = Duration::from_secs(60);
    let cfg = EchoConfig {
        connections: 4,
        messages: 20,
        window: 4,
        payload: 4000,
        pace: pace(4),
        event: sockgate_protocol::events::client::ECHO.to_owned(),
    };
    let r = echo(&s, &cfg).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.acked, 80, "every payload came back as sent");
    // 80 payloads of 4,000 bytes went each way; deflated, far fewer bytes.
    let (received, sent) = s.client.wire.bytes();
    let carried = 80 * 4000;
    assert!(received < carried / 2, "received {received}");
    assert!(sent < carried / 2, "sent {sent}");
    assert!(sent > 0 && received > 0);

    // The same without compression: more than the payloads.
    let plain = setup(serve_with(Some(Compression::default())).await);
    let r = echo(&plain, &cfg).await;
    assert_eq!(r.acked, 80);
    let (received, sent) = plain.client.wire.bytes();
    assert!(received > carried && sent > carried, "{received} {sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_gets_every_ack_back() {
    let s = setup(serve().await);
    let cfg = EchoConfig {
        connections: 20,
        messages: 50,
        window: 8,
        payload: 0,
        pace: pace(20),
        event: sockgate_protocol::events::client::ECHO.to_owned(),
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
        payload: 0,
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
            payload: 0,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_without_a_disconnect_counts_nobody_as_back() {
    // A restart command that restarts nothing: every client stays
    // connected, the wait ends shortly after the command, and nobody is
    // counted as back.
    let s = setup(serve().await);
    let cfg = ReconnectConfig {
        connections: 10,
        pace: pace(10),
        restart_cmd: "true".into(),
        window: Duration::from_secs(20),
    };
    let started = std::time::Instant::now();
    let r = reconnect(&s, &cfg).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.failure, None);
    assert_eq!((r.connected_before, r.disconnected, r.back), (10, 0, 0));
    assert_eq!(r.back_within_30s, Some(0.0));
    assert_eq!(r.restart_status, "exit 0");
    assert!(r.waited_s >= 1.0 && started.elapsed() < Duration::from_secs(10));
    let report = r.report(&s, &cfg);
    assert!(report.ok, "{}", report.table());
    assert!(
        report
            .table()
            .contains("10 client(s) never lost their connection")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_counts_a_failing_restart_command() {
    let s = setup(serve().await);
    let cfg = ReconnectConfig {
        connections: 2,
        pace: pace(2),
        restart_cmd: "exit 3".into(),
        window: Duration::from_secs(5),
    };
    let r = reconnect(&s, &cfg).await;
    assert_eq!(r.restart_exit_code, Some(3));
    assert_eq!(r.failure.as_deref(), Some("restart command: exit 3"));
    assert!(!r.report(&s, &cfg).ok);
}

/// The `sockgate` binary: `SOCKGATE_BIN`, or the one next to this test's
/// directory (target/debug/sockgate for target/debug/deps/against_gateway-*).
fn sockgate_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SOCKGATE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("sockgate");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build --workspace` (or set SOCKGATE_BIN)",
        bin.display()
    );
    bin
}

/// A real `sockgate serve` on a fixed port, started in the background by
/// `start.sh`, which records its pid; `kill.sh` SIGKILLs it and waits until
/// it is gone; `restart.sh` does both and waits until it accepts
/// connections again. SIGKILL drops every transport whatever the server's
/// graceful shutdown would do, so every client has to reconnect.
struct Restartable {
    dir: PathBuf,
    url: String,
}

impl Restartable {
    fn start() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("sockgate-bench-restart-{nanos}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let d = dir.display();
        let start = format!(
            "JWT_SECRET='{SECRET}' SOCKGATE_LISTEN=127.0.0.1:{port} SOCKGATE_DATA_DIR='{d}/data' \\\n\
             SOCKGATE_LOG=warn,sockgate::server=info SOCKGATE_HANDSHAKE_RATE=0 SOCKGATE_EVENT_RATE=0 \\\n\
             '{bin}' serve >>'{d}/sockgate.log' 2>&1 &\n\
             echo $! >'{d}/pid'\n",
            bin = sockgate_bin().display(),
        );
        // A SIGKILLed process nobody has reaped yet is a zombie: gone too.
        let kill = format!(
            "pid=$(cat '{d}/pid')\n\
             kill -KILL \"$pid\"\n\
             while kill -0 \"$pid\" 2>/dev/null && \\\n\
             ! grep -q '^State:[[:space:]]*Z' \"/proc/$pid/status\" 2>/dev/null; do sleep 0.05; done\n"
        );
        // The killed process's listening socket can outlive its zombie
        // state for a moment on a loaded machine, and a start that finds the
        // port taken exits: start again until a new process says it listens.
        let restart = format!(
            "sh '{d}/kill.sh' || exit 1\n\
             up() {{ cat '{d}/sockgate.log' 2>/dev/null | grep -c 'sockgate listening'; }}\n\
             before=$(up)\n\
             for try in $(seq 1 100); do\n\
             \x20 sh '{d}/start.sh'; pid=$(cat '{d}/pid')\n\
             \x20 while kill -0 \"$pid\" 2>/dev/null && [ \"$(up)\" -le \"$before\" ]; do sleep 0.05; done\n\
             \x20 [ \"$(up)\" -gt \"$before\" ] && break\n\
             \x20 sleep 0.1\n\
             done\n\
             '{bench}' wait-ready --url {url} --timeout 20 >&2\n",
            bench = env!("CARGO_BIN_EXE_sockgate-bench"),
        );
        std::fs::write(dir.join("start.sh"), start).unwrap();
        std::fs::write(dir.join("kill.sh"), kill).unwrap();
        std::fs::write(dir.join("restart.sh"), restart).unwrap();
        let server = Self { dir, url };
        assert!(server.sh("start.sh").success());
        server.wait_ready();
        server
    }

    fn sh(&self, script: &str) -> std::process::ExitStatus {
        std::process::Command::new("sh")
            .arg(self.dir.join(script))
            .status()
            .unwrap()
    }

    fn command(&self, script: &str) -> String {
        format!("sh '{}'", self.dir.join(script).display())
    }

    fn wait_ready(&self) {
        let addr: SocketAddr = self.url["http://".len()..].parse().unwrap();
        for _ in 0..400 {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join("sockgate.log")).unwrap_or_default();
        panic!("sockgate did not start on {}; its log:\n{log}", self.url);
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        let _ = self.sh("kill.sh");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup_for(url: &str) -> Setup {
    let client = Client::new(url, 4).unwrap();
    let mut s = Setup::new(
        client,
        Tokens::Mint(Minter::new(SECRET, Duration::from_secs(600))),
    );
    s.timeout = Duration::from_secs(60);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_brings_every_client_back_after_a_kill_and_restart() {
    let server = Restartable::start();
    let s = setup_for(&server.url);
    let cfg = ReconnectConfig {
        connections: 20,
        pace: pace(20),
        restart_cmd: server.command("restart.sh"),
        window: Duration::from_secs(30),
    };
    let r = reconnect(&s, &cfg).await;
    let report = r.report(&s, &cfg);
    let table = report.table();
    assert_eq!(r.failure, None, "{table}");
    assert!(r.errors.is_empty(), "{table}");
    assert_eq!(r.restart_status, "exit 0", "{table}");
    // Every client lost its connection, and every one is connected again.
    assert_eq!(
        (
            r.connected_before,
            r.disconnected,
            r.back,
            r.given_up,
            r.never_back
        ),
        (20, 20, 20, 0, 0),
        "{table}"
    );
    assert_eq!(r.back_within_30s, Some(1.0), "{table}");
    let returns = r.return_time.expect("return times");
    assert_eq!(returns.count, 20);
    // socket.io-client's first delay is at least 551 ms: no client came
    // back without its backoff.
    assert!(returns.min_us >= 551_000, "{table}");
    assert!(r.attempts_p50.unwrap() >= 1, "{table}");
    assert_eq!(r.since_restart.unwrap().count, 20);
    assert!(report.ok, "{table}");
    let back = report.metric("reconnect.back").and_then(|m| m.value);
    assert_eq!(back, Some(20.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_fails_when_the_server_does_not_come_back() {
    // Killed and not started again: every client keeps trying until the
    // window closes, and the run fails.
    let server = Restartable::start();
    let s = setup_for(&server.url);
    let cfg = ReconnectConfig {
        connections: 5,
        pace: pace(5),
        restart_cmd: server.command("kill.sh"),
        window: Duration::from_secs(4),
    };
    let r = reconnect(&s, &cfg).await;
    assert_eq!(
        (r.connected_before, r.disconnected, r.back, r.never_back),
        (5, 5, 0, 5),
        "{:?}",
        r.errors
    );
    assert_eq!(r.errors.get("ERR_NOT_BACK: within the window"), 5);
    assert_eq!(r.back_within_30s, Some(0.0));
    assert!(r.waited_s >= 4.0);
    assert!(
        r.failed_attempts.get("ERR_TCP_CONNECT: connection refused") >= 5,
        "{:?}",
        r.failed_attempts
    );
    assert!(!r.report(&s, &cfg).ok);
}
