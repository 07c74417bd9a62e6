//! Log output: JSON lines in production, human-readable with `--dev`.
//!
//! Two promises, whatever happens to the log's reader and whatever a token
//! holds:
//!
//! - Logging never affects serving or shutdown. Writes to stderr that fail
//!   (a closed pipe, a full disk) are dropped: no error, no panic, no
//!   retry. tracing-subscriber reports a failed write with `eprintln!`,
//!   which panics when stderr itself is broken, in whichever task was
//!   logging (a handshake, the shutdown); that report is turned off.
//! - One event is one line. JSON escapes by itself; the `pretty` format
//!   escapes control characters (and Unicode line separators) in every
//!   field value and message, so a value holding `\n` cannot forge a line.

use std::fmt::{self, Write as _};
use std::io::{self, Write};

use tracing::Dispatch;
use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{self, FormatFields, Writer};
use tracing_subscriber::util::SubscriberInitExt;

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    // clap shows a variant's doc comment in `--help`; `help = None` keeps
    // these out of it (the setting's own help names the values).
    /// One JSON object per event and line.
    #[value(help = None::<&str>)]
    Json,
    /// Human-readable text, one line per event.
    #[value(help = None::<&str>)]
    Pretty,
}

/// Directives appended to every filter. A websocket library may log whole
/// frames at trace level (tungstenite, used before, did), and a handshake
/// frame carries the token: its target is capped whatever the operator
/// asks for.
const NEVER_VERBOSE: &str = "yawc=info";

/// Installs the global subscriber. Logs go to stderr; stdout is kept for
/// what commands print on purpose (tokens from `sockgate token`, the `--dev` banner).
pub fn init(format: LogFormat, filter: &str) {
    let _ = dispatch(format, filter, Stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`.
fn dispatch<W>(format: LogFormat, filter: &str, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(format!("{filter},{NEVER_VERBOSE}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{NEVER_VERBOSE}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Its report of a failed write is an `eprintln!`, which panics when
        // stderr is what failed.
        .log_internal_errors(false);
    match format {
        LogFormat::Json => Dispatch::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
        LogFormat::Pretty => Dispatch::new(builder.fmt_fields(one_line_fields()).finish()),
    }
}

/// stderr, with every write error swallowed: the log is best effort, the
/// gateway is not.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = StderrWriter;

    fn make_writer(&'a self) -> Self::Writer {
        StderrWriter
    }
}

/// See [`Stderr`].
#[derive(Debug)]
pub struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A failed or partial write is given up on, never reported: the
        // caller would only retry, report (to stderr) or panic.
        let _ = io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// The fields of the `pretty` format: `message name=value ...`, as
/// tracing-subscriber writes them, with control characters escaped.
fn one_line_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    let field: fn(&mut Writer<'_>, &Field, &dyn fmt::Debug) -> fmt::Result = write_field;
    format::debug_fn(field).delimited(" ")
}

fn write_field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let name = field.name();
    if name.starts_with("log.") {
        return Ok(());
    }
    if name != "message" {
        write!(w, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
    }
    // Display values (`%x`) and messages are written raw by `Debug`; strings
    // recorded as `&str` come quoted and escaped already, and escaping them
    // again changes nothing a control character could use.
    write!(Escaped(w), "{value:?}")
}

/// Writes through to `W`, escaping what could end or rewrite a log line.
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if breaks_a_line(c) {
                for e in c.escape_default() {
                    self.0.write_char(e)?;
                }
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Control characters (`\n`, `\r`, ESC, C1 codes, ...) and the Unicode line
/// and paragraph separators, which some viewers break lines at.
fn breaks_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    fn logged(format: LogFormat, f: impl FnOnce()) -> String {
        let out = Capture::default();
        tracing::dispatcher::with_default(&dispatch(format, "trace", out.clone()), f);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    const FORGED: &str = "mallory\n2026-01-01T00:00:00.000000Z  INFO sockgate::auth: handshake accepted outcome=\"OK\" user=admin\r\u{2028}\u{1b}[2K";

    /// A value holding a line break must not start a line of its own in the
    /// `pretty` format: one event, one line.
    #[test]
    fn a_value_cannot_forge_a_pretty_log_line() {
        let out = logged(LogFormat::Pretty, || {
            tracing::info!(
                target: "sockgate::auth",
                outcome = "OK",
                user = %FORGED,
                session = FORGED,
                error = ?FORGED,
                "handshake {}",
                FORGED
            );
        });
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(out.ends_with('\n'), "{out}");
        assert!(!out.contains(['\r', '\u{2028}']), "{out}");
        // The formatter's own colours use ESC; the value's must not get through.
        assert!(!out.contains("\u{1b}[2K"), "{out}");
        assert!(out.contains("user=mallory\\n2026"), "{out}");
        assert!(out.contains("outcome=\"OK\""), "{out}");
        assert!(out.contains("handshake mallory\\n"), "{out}");
    }

    #[test]
    fn json_lines_stay_one_line() {
        let out = logged(LogFormat::Json, || {
            tracing::info!(target: "sockgate::auth", user = %FORGED, "handshake accepted");
        });
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        let entry: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(entry["user"], FORGED);
    }

    /// Writing to a stderr nobody reads any more is not an error.
    #[test]
    fn failed_writes_are_swallowed() {
        let mut w = Stderr.make_writer();
        assert!(w.write_all(b"").is_ok());
        assert_eq!(w.write(b"x\n").unwrap(), 2);
        assert!(w.flush().is_ok());
    }
}
