//! `sockgate-bench`: load generator for sockgate and other Socket.IO v5
//! servers.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over raw WebSockets (no JavaScript
//! in the load path), one task per connection with small buffers, spread
//! over several loopback source addresses (127.0.0.1, 127.0.0.2, ...) so
//! more than ~28k connections fit, and raises its own open-file limit to
//! the hard limit. Every scenario has bounded counts and an overall
//! `--timeout`, prints a table, and with `--json PATH` writes its report.
//!
//! ```text
//! # Tokens are minted from the server's HS256 secret (sub = user-<n>, iat,
//! # exp, a unique jti), or read from --tokens-file (one per line).
//! export JWT_SECRET=a-benchmark-secret-of-at-least-32-bytes
//! sockgate-bench connect --url http://127.0.0.1:3001 --connections 5000 --concurrency 200
//! sockgate-bench connect --connections 5000 --rate 1000          # 1000 new connections/s
//! sockgate-bench hold    --connections 20000 --hold 30 --server-pid $(pgrep -n sockgate)
//! sockgate-bench reject  --attempts 3000                         # bad signature, expired, alg none
//! sockgate-bench echo    --connections 100 --messages 1000 --window 16
//! sockgate-bench rpc     --connections 100 --messages 1000 --window 16
//! sockgate-bench fanout  --members 5000 --messages 50 --api-key $SOCKGATE_API_KEY
//! sockgate-bench refresh --connections 100 --refreshes 20        # sockgate only
//! sockgate-bench revoke  --connections 1000 --api-key $SOCKGATE_API_KEY   # sockgate only
//! # 2000 clients that reconnect like socket.io-client; the command restarts the server:
//! sockgate-bench reconnect --connections 2000 --window 30 --restart-cmd 'bash restart.sh'
//!
//! # Two nodes of one cluster (what bench/cluster.sh does): sockets alternate
//! # between the nodes, the API call goes to --url.
//! sockgate-bench fanout --url http://127.0.0.1:3001 --node http://127.0.0.1:3002 --members 2000
//! sockgate-bench revoke --url http://127.0.0.1:3001 --node http://127.0.0.1:3002 --connections 2000
//!
//! # Comparing servers (what bench/compare.sh does):
//! sockgate-bench compare --run node-peer=results/peer --run sockgate=results/sockgate \
//!     --mode quick --out bench/results/latest.json
//! sockgate-bench chart --input bench/results/latest.json --out bench/results/latest.svg
//! sockgate-bench free-port                                       # prints a free loopback port
//! sockgate-bench wait-ready --url http://127.0.0.1:3001          # waits until it accepts TCP
//! ```
//!
//! Exit status: 0 when the scenario ran clean, 1 when it counted errors
//! (the table lists them), 2 for a usage or setup error, 3 when `reject`
//! saw a bad token ACCEPTED.
//!
//! Latency percentiles are exact nearest-rank over every sample (see
//! `sockgate_bench::stats`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sockgate_bench::compare::{Comparison, Run};
use sockgate_bench::fleet::Pace;
use sockgate_bench::produce::Via;
use sockgate_bench::report::Metric;
use sockgate_bench::scenarios::{self, *};
use sockgate_bench::sys::{self, Machine};
use sockgate_bench::{Client, Minter, Report, Setup, Tokens, chart};
use sockgate_protocol::events::client;

#[derive(Parser)]
#[command(
    name = "sockgate-bench",
    version,
    about = "Load generator for sockgate and other Socket.IO v5 servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The shape of an `echo` or `rpc` run.
#[derive(Args, Clone)]
struct Exchange {
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Messages per connection.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Most unanswered messages per connection.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Bytes of chat-like text in each message (0: `{"n":..}` alone).
    #[arg(long, default_value_t = 0)]
    payload: usize,
}

#[derive(Args, Clone)]
struct Common {
    /// The server, `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:3001")]
    url: String,
    /// Another node of the same cluster, repeatable: connections alternate
    /// between --url and the nodes; admin API calls go to --url.
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// HS256 secret to mint tokens with.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Read connection tokens from this file (one per line) instead of minting.
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Lifetime of minted tokens, seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Number of loopback source addresses (127.0.0.1 ... 127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Most handshakes in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Most new connections per second (default: as fast as --concurrency allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Limit for one handshake, seconds.
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Limit for the whole scenario, seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Generator worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Offer permessage-deflate on every WebSocket, as browsers do.
    #[arg(long)]
    compress: bool,
}

#[derive(Subcommand)]
enum Command {
    /// N connections: handshake→CONNECT latency, connections/s, failures by code.
    Connect {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
    /// Hold N idle connections for T seconds; server RSS per connection.
    Hold {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
        /// The server's process id, to read its VmRSS.
        #[arg(long)]
        server_pid: Option<u32>,
        /// RSS sampling period, seconds.
        #[arg(long, default_value_t = 1.0)]
        sample_every: f64,
    },
    /// Bad-signature, expired and unsigned tokens: all must be refused.
    Reject {
        #[command(flatten)]
        common: Common,
        /// Total handshakes, spread over the three kinds.
        #[arg(long, default_value_t = 900)]
        attempts: usize,
    },
    /// C connections × M `echo` events with acks, pipelined up to a window.
    Echo {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        exchange: Exchange,
    },
    /// C connections × M app events with acks (`rpc`), which the server
    /// hands to the app: sockgate to its backend (`SOCKGATE_EVENTS_URL`),
    /// the Node peer to its handler. The ack carries back the payload.
    Rpc {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        exchange: Exchange,
        /// The event's name.
        #[arg(long, default_value = "rpc")]
        event: String,
    },
    /// N members of one room; K messages through `POST /api/publish`.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// The `sub` of every member (room `user:<user>`).
        #[arg(long, default_value = "fanout")]
        user: String,
        /// Publish to this room instead of `{"user": ...}`.
        #[arg(long)]
        room: Option<String>,
        #[arg(long, default_value = "bench")]
        event: String,
        /// Seconds to wait for every member to have one message.
        #[arg(long, default_value_t = 10.0)]
        message_timeout: f64,
        /// Admin API key (Bearer).
        #[arg(long, env = "SOCKGATE_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Bytes of chat-like text in each message (0: none).
        #[arg(long, default_value_t = 0)]
        payload: usize,
    },
    /// N members of one user; K messages through a producer (the admin
    /// API, a queue sockgate consumes, or an outside command such as the
    /// Node peer's redis-emitter): messages/s and send→member latency.
    Queue {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10)]
        members: usize,
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// The `sub` of every member (room `user:<user>`).
        #[arg(long, default_value = "queue")]
        user: String,
        #[arg(long, default_value = "bench")]
        event: String,
        /// Messages per second; 0: as fast as the senders go.
        #[arg(long, default_value_t = 0.0)]
        send_rate: f64,
        /// Concurrent senders when --send-rate is 0.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// api, redis:URL#STREAM, nats:URL#SUBJECT, amqp:URL#QUEUE,
        /// postgres:URL#TABLE or command:CMD (one JSON message per line on
        /// its standard input).
        #[arg(long, default_value = "api")]
        via: String,
        /// Seconds to wait, after the last send, for every delivery.
        #[arg(long, default_value_t = 30.0)]
        drain_timeout: f64,
        /// Admin API key (Bearer), for --via api.
        #[arg(
            long,
            env = "SOCKGATE_API_KEY",
            hide_env_values = true,
            default_value = ""
        )]
        api_key: String,
        /// Delete the stream, queue or table once the run is over.
        #[arg(long)]
        drop_after: bool,
    },
    /// C connections × R in-band `auth:refresh` (sockgate only).
    Refresh {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        refreshes: usize,
    },
    /// N connections sharing one jti, revoked at once: time to every session:end (sockgate only).
    Revoke {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Rounds, each with fresh connections and a fresh jti; percentiles
        /// cover all of them.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Seconds to wait for every session:end.
        #[arg(long, default_value_t = 30.0)]
        wait: f64,
        /// Admin API key (Bearer).
        #[arg(long, env = "SOCKGATE_API_KEY", hide_env_values = true)]
        api_key: String,
    },
    /// N clients that reconnect like socket.io-client through a restart (--restart-cmd): how many come back, how fast.
    Reconnect {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Shell command that restarts the server, run with `sh -c` once
        /// every connection is open. The clock starts when it is spawned; a
        /// non-zero exit is an error.
        #[arg(long)]
        restart_cmd: String,
        /// Seconds from the restart to wait for every disconnected client to
        /// be back (--timeout bounds the connecting before it).
        #[arg(long, default_value_t = 30.0)]
        window: f64,
    },
    /// Put the reports of several servers side by side.
    Compare {
        /// `NAME=DIR`: a server's name and the directory of its JSON reports.
        /// The first is the baseline; ratios are last/first.
        #[arg(long = "run", required = true, num_args = 1)]
        runs: Vec<String>,
        #[arg(long, default_value = "quick")]
        mode: String,
        /// The date to record (e.g. `date -u +%FT%TZ`).
        #[arg(long, default_value = "")]
        date: String,
        /// A note to record, repeatable.
        #[arg(long = "note")]
        notes: Vec<String>,
        /// Write the comparison (with machine info) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Draw a comparison JSON as an SVG bar chart.
    Chart {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Wait until the server accepts TCP connections.
    WaitReady {
        #[arg(long, default_value = "http://127.0.0.1:3001")]
        url: String,
        /// Seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sockgate-bench: {message}");
            ExitCode::from(2)
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn setup(common: &Common, needed: usize) -> Result<Setup, String> {
    match sys::raise_nofile_limit() {
        Ok(limit) if (limit as usize) < needed + 64 => eprintln!(
            "sockgate-bench: warning: open-file limit {limit} is below the {needed} connections asked for; \
             raise the hard limit (ulimit -Hn) or expect ERR_IO failures"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("sockgate-bench: warning: cannot raise the open-file limit: {e}"),
    }
    let mut client = Client::new(&common.url, common.sources)?;
    client.handshake_timeout = secs(common.handshake_timeout);
    client.compress = common.compress;
    let tokens = match (&common.tokens_file, &common.secret) {
        (Some(path), _) => {
            Tokens::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(secret)) if !secret.is_empty() => {
            Tokens::Mint(Minter::new(secret, Duration::from_secs(common.ttl)))
        }
        _ => return Err("no tokens: set JWT_SECRET (or --secret) or give --tokens-file".into()),
    };
    let mut setup = Setup::new(client, tokens);
    setup.timeout = secs(common.timeout);
    for url in &common.nodes {
        let mut peer = Client::new(url, common.sources)?;
        peer.handshake_timeout = setup.client.handshake_timeout;
        peer.compress = common.compress;
        peer.wire = setup.client.wire.clone();
        setup.peers.push(std::sync::Arc::new(peer));
    }
    Ok(setup)
}

fn runtime(common: &Common) -> Result<tokio::runtime::Runtime, String> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = common.threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().map_err(|e| e.to_string())
}

fn pace(common: &Common) -> Pace {
    Pace {
        concurrency: common.concurrency,
        rate: common.rate,
    }
}

/// Prints and saves a report; the exit status follows from it.
/// Runs `echo` (sockgate's own `echo` event) or `rpc` (an app event).
fn exchanges(common: &Common, e: Exchange, event: String) -> Result<ExitCode, String> {
    let s = setup(common, e.connections)?;
    let cfg = EchoConfig {
        connections: e.connections,
        messages: e.messages,
        window: e.window,
        payload: e.payload,
        pace: pace(common),
        event,
    };
    let r = runtime(common)?.block_on(scenarios::echo(&s, &cfg));
    finish(common, r.report(&s, &cfg), &s)
}

fn finish(common: &Common, mut report: Report, setup: &Setup) -> Result<ExitCode, String> {
    // What crossed the wire, both ways, over the whole run (handshakes
    // included): what compression saves shows here.
    let (received, sent) = setup.client.wire.bytes();
    report.metrics.push(Metric::count(
        "wire.received",
        "bytes received (wire)",
        received as usize,
    ));
    report.metrics.push(Metric::count(
        "wire.sent",
        "bytes sent (wire)",
        sent as usize,
    ));
    print!("{}", report.table());
    if let Some(path) = &common.json {
        report
            .write_json(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(if report.scenario == "reject" && report.failure.is_some() {
        ExitCode::from(3)
    } else if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Connect {
            common,
            connections,
        } => {
            let s = setup(&common, connections)?;
            let cfg = ConnectConfig {
                connections,
                pace: pace(&common),
            };
            let r = runtime(&common)?.block_on(scenarios::connect(&s, &cfg));
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Hold {
            common,
            connections,
            hold,
            server_pid,
            sample_every,
        } => {
            let s = setup(&common, connections)?;
            let cfg = HoldConfig {
                connections,
                pace: pace(&common),
                hold: secs(hold),
                server_pid,
                sample_every: secs(sample_every),
            };
            let r = runtime(&common)?.block_on(scenarios::hold(&s, &cfg));
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Reject { common, attempts } => {
            let s = setup(&common, common.concurrency)?;
            let cfg = RejectConfig {
                attempts,
                pace: pace(&common),
            };
            let r = runtime(&common)?.block_on(scenarios::reject(&s, &cfg))?;
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Echo { common, exchange } => exchanges(&common, exchange, client::ECHO.to_owned()),
        Command::Rpc {
            common,
            exchange,
            event,
        } => exchanges(&common, exchange, event),
        Command::Fanout {
            common,
            members,
            messages,
            user,
            room,
            event,
            message_timeout,
            api_key,
            payload,
        } => {
            let s = setup(&common, members)?;
            let cfg = FanoutConfig {
                members,
                messages,
                user,
                room,
                event,
                message_timeout: secs(message_timeout),
                pace: pace(&common),
                api_key,
                payload,
            };
            let r = runtime(&common)?.block_on(scenarios::fanout(&s, &cfg));
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Queue {
            common,
            members,
            messages,
            user,
            event,
            send_rate,
            in_flight,
            via,
            drain_timeout,
            api_key,
            drop_after,
        } => {
            let target = Via::parse(&via)?;
            let s = setup(&common, members)?;
            let cfg = QueueConfig {
                members,
                messages,
                user,
                event,
                rate: send_rate,
                in_flight,
                via: target.label().to_owned(),
                drain_timeout: secs(drain_timeout),
                pace: pace(&common),
                api_key,
                target: Some(target),
                drop_after,
            };
            let r = runtime(&common)?.block_on(scenarios::queue(&s, &cfg));
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Refresh {
            common,
            connections,
            refreshes,
        } => {
            let s = setup(&common, connections)?;
            let cfg = RefreshConfig {
                connections,
                refreshes,
                pace: pace(&common),
            };
            let r = runtime(&common)?.block_on(scenarios::refresh(&s, &cfg))?;
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Revoke {
            common,
            connections,
            rounds,
            wait,
            api_key,
        } => {
            let s = setup(&common, connections)?;
            let cfg = RevokeConfig {
                connections,
                rounds,
                pace: pace(&common),
                wait: secs(wait),
                api_key,
            };
            let r = runtime(&common)?.block_on(scenarios::revoke(&s, &cfg))?;
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Reconnect {
            common,
            connections,
            restart_cmd,
            window,
        } => {
            let s = setup(&common, connections)?;
            let cfg = ReconnectConfig {
                connections,
                pace: pace(&common),
                restart_cmd,
                window: secs(window),
            };
            let r = runtime(&common)?.block_on(scenarios::reconnect(&s, &cfg));
            finish(&common, r.report(&s, &cfg), &s)
        }
        Command::Compare {
            runs,
            mode,
            date,
            notes,
            out,
        } => {
            let mut loaded = Vec::new();
            for spec in &runs {
                let (name, dir) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("--run {spec}: expected NAME=DIR"))?;
                loaded.push(Run::load(name, std::path::Path::new(dir))?);
            }
            let cmp = Comparison::new(loaded, Machine::detect(date), mode, notes);
            print!("{}", cmp.table());
            if let Some(path) = out {
                cmp.write_json(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Chart { input, out } => {
            let cmp = Comparison::read_json(&input)?;
            chart::draw(&cmp, &out)?;
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            println!(
                "{}",
                listener.local_addr().map_err(|e| e.to_string())?.port()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::WaitReady { url, timeout } => {
            let client = Client::new(&url, 1)?;
            let until = std::time::Instant::now() + secs(timeout);
            loop {
                if std::net::TcpStream::connect_timeout(&client.addr, Duration::from_secs(1))
                    .is_ok()
                {
                    return Ok(ExitCode::SUCCESS);
                }
                if std::time::Instant::now() >= until {
                    return Err(format!(
                        "{url} did not accept connections within {timeout} s"
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
