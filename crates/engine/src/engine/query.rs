//! The query of an Engine.IO request, parsed once.
//!
//! Whatever reads a request before the engine (the gateway's door, which
//! binds a long-polling session to the address that opened it) must read
//! the same `sid` as the engine that serves it: both call
//! [`Query::parse`]. A request that names `EIO`, `transport` or `sid`
//! twice is refused, so that no two readers can disagree on which one
//! counts (`…&sid=<decoy>&sid=<victim>` once let the door check one
//! session and the engine serve another).

use super::Sid;

/// The parameters of an Engine.IO request's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Query<'a> {
    /// `EIO`: the protocol version.
    pub eio: Option<&'a str>,
    /// `transport`: `polling` or `websocket`.
    pub transport: Option<&'a str>,
    /// `sid`: the session a request names; none on an opening.
    pub sid: Option<&'a str>,
}

/// Why a query cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `EIO`, `transport` or `sid` appears more than once.
    #[error("the query repeats {0}")]
    Repeated(&'static str),
}

impl<'a> Query<'a> {
    /// The parameters of `uri`'s query. The values are taken as they are:
    /// none of the three needs percent-decoding (digits, a transport name,
    /// twenty alphanumerics), and one that would is simply not valid.
    pub fn parse(uri: &'a http::Uri) -> Result<Self, QueryError> {
        Self::parse_str(uri.query().unwrap_or(""))
    }

    /// [`Query::parse`] on the query string alone (without the `?`).
    pub fn parse_str(query: &'a str) -> Result<Self, QueryError> {
        let mut q = Query::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (slot, name) = match key {
                "EIO" => (&mut q.eio, "EIO"),
                "transport" => (&mut q.transport, "transport"),
                "sid" => (&mut q.sid, "sid"),
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(QueryError::Repeated(name));
            }
        }
        Ok(q)
    }

    /// The session the request names: `None` for an opening, `Some(None)`
    /// for a `sid` that cannot be any session's.
    pub fn session(&self) -> Option<Option<Sid>> {
        self.sid.map(Sid::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_parameters_are_read_once_each() {
        let q = Query::parse_str("EIO=4&transport=polling&t=abc&sid=x").unwrap();
        assert_eq!(q.eio, Some("4"));
        assert_eq!(q.transport, Some("polling"));
        assert_eq!(q.sid, Some("x"));
        assert_eq!(q.session(), Some(None));
        assert_eq!(Query::parse_str("").unwrap(), Query::default());
        assert_eq!(Query::parse_str("EIO=4").unwrap().session(), None);
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let sid = Sid::random();
        let decoy = Sid::random();
        let twice = format!("EIO=4&transport=polling&sid={decoy}&sid={sid}");
        assert_eq!(Query::parse_str(&twice), Err(QueryError::Repeated("sid")));
        assert_eq!(
            Query::parse_str("EIO=4&EIO=3&transport=polling"),
            Err(QueryError::Repeated("EIO"))
        );
        assert_eq!(
            Query::parse_str("EIO=4&transport=websocket&transport=polling"),
            Err(QueryError::Repeated("transport"))
        );
        // Even empty: `sid` twice is ambiguous to whoever reads it.
        assert_eq!(
            Query::parse_str("EIO=4&sid&sid="),
            Err(QueryError::Repeated("sid"))
        );
    }
}
