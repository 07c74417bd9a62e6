//! The `sockgate` command line: `serve` and `token`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::config::token::{TokenRequest, mint, parse_claim, random_secret};
use crate::config::{Config, Settings};
use crate::server;
use crate::telemetry::logging;

#[derive(Debug, Parser)]
#[command(name = "sockgate", version, about = "Authenticated Socket.IO gateway")]
pub(crate) struct Cli {
    /// TOML configuration file; environment variables and flags override it.
    #[arg(long, short, env = "SOCKGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Development mode: with no key configured, generate a random secret
        /// for this process and print it with a ready-to-use token (with
        /// configured keys, no token is printed).
        #[arg(long)]
        dev: bool,
    },
    /// Print an HS256 token signed with the configured secret.
    Token {
        #[command(flatten)]
        settings: Settings,
        /// The user the token names (put in the configured user claim).
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. `90s`, `15m`, `2h`.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// An extra claim `key=value` (value parsed as JSON when it is JSON). Repeatable.
        #[arg(long = "claim", value_parser = parse_claim)]
        claims: Vec<(String, Value)>,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { settings, dev } => serve(settings, cli.config, dev),
        Command::Token {
            settings,
            sub,
            ttl,
            claims,
        } => token(
            settings,
            cli.config,
            TokenRequest {
                user: sub,
                ttl,
                claims,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Not `eprintln!`, which panics when stderr is gone.
            let _ = writeln!(std::io::stderr(), "sockgate: {message}");
            ExitCode::from(2)
        }
    }
}

fn load(settings: Settings, file: Option<PathBuf>, dev: bool) -> Result<Config, String> {
    let settings = settings
        .resolve(file.as_deref())
        .map_err(|e| e.to_string())?;
    Config::from_settings(settings, dev).map_err(|e| e.to_string())
}

fn serve(settings: Settings, file: Option<PathBuf>, dev: bool) -> Result<(), String> {
    let mut config = load(settings, file, dev)?;
    logging::init(config.log_format, &config.log_filter);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = server::bind(config.listen).map_err(|e| e.to_string())?;
        if dev {
            // The banner's URLs name the port really bound (`--listen :0`).
            if let Ok(addr) = listener.local_addr() {
                config.listen = addr;
            }
            dev_banner(&mut config)?;
        }
        server::serve_until(listener, config, server::shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

/// Prints what a developer needs to connect. Only with `--dev`.
///
/// A token is minted and printed only with the secret `--dev` generated for
/// this process. With keys from the configuration nothing is minted: a
/// `JWT_SECRET` there may be the production one, and a token it signs is a
/// production token in the terminal, the shell's scrollback and the CI log.
fn dev_banner(config: &mut Config) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    // Best effort: a closed stdout must not keep the gateway from serving.
    let mut say = |line: &str| {
        let _ = writeln!(out, "{line}");
    };
    say("sockgate --dev: DEVELOPMENT MODE, do not use in production.");
    let base = format!("http://{}", config.listen);
    // The admin API and the dashboard are on in --dev; a generated key
    // is as throwaway as the generated secret.
    if config.api_key.is_none() {
        let key = random_secret();
        say(&format!(
            "SOCKGATE_API_KEY={} (random, for this process only)",
            key.expose()
        ));
        config.api_key = Some(key);
    }
    say(&format!(
        "Dashboard: {base}/dashboard (log in with SOCKGATE_API_KEY)"
    ));
    if let Some(origins) = &config.limits.allowed_origins {
        say(&format!(
            "Browser pages on {} may connect (SOCKGATE_ALLOWED_ORIGINS).",
            origins.entries().join(", ")
        ));
    }
    if !config.keys.is_empty() {
        say(
            "Keys come from your configuration; no development token is printed \
             (mint one with `sockgate token --sub NAME`).",
        );
        return Ok(());
    }
    let secret = random_secret();
    config.keys.secret = Some(secret.clone());
    say(&format!(
        "JWT_SECRET={} (random, for this process only)",
        secret.expose()
    ));
    let req = TokenRequest {
        user: "dev".into(),
        ttl: Duration::from_secs(3600),
        claims: Vec::new(),
    };
    let token = mint(&secret, &config.rules, &req).map_err(|e| e.to_string())?;
    say(&format!(
        "A token for user `dev`, valid for 1 hour:\n{token}"
    ));
    say(&format!(
        "Connect with: io(\"{base}\", {{ auth: {{ token: \"<the token above>\" }} }})"
    ));
    Ok(())
}

fn token(settings: Settings, file: Option<PathBuf>, req: TokenRequest) -> Result<(), String> {
    let config = load(settings, file, false)?;
    let secret = config.keys.secret.as_ref().ok_or(
        "no HMAC secret configured: set JWT_SECRET (or SOCKGATE_JWT_SECRET, or --jwt-secret)",
    )?;
    // Refuse to sign with a secret the server would refuse to start with.
    sockgate_auth::VerifyKey::hmac(secret.expose().as_bytes(), &config.rules)
        .map_err(|e| format!("JWT_SECRET: {e}"))?;
    let token = mint(secret, &config.rules, &req).map_err(|e| e.to_string())?;
    writeln!(std::io::stdout(), "{token}").map_err(|e| format!("cannot print the token: {e}"))
}
