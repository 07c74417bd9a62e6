//! Log output: JSON lines in production, human-readable with `--dev`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Directives appended to every filter. The websocket library logs whole
/// frames at trace level, and a handshake frame carries the token: those
/// targets are capped whatever the operator asks for.
const NEVER_VERBOSE: &str = "tungstenite=info,tokio_tungstenite=info";

/// Installs the global subscriber. Logs go to stderr; stdout is kept for
/// what commands print on purpose (tokens from `sockgate token`, the `--dev` banner).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(format!("{filter},{NEVER_VERBOSE}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{NEVER_VERBOSE}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
