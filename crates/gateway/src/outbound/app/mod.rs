//! The app's backend over HTTP: the [`App`] of the gateway's node.
//!
//! Client events sockgate does not handle go to the first route whose
//! pattern matches the event's name (`chat:*`; `SOCKGATE_EVENTS_URL` is the
//! route for `*`), as a signed `POST` ([`http`]); the reply is read and
//! checked ([`reply`]) and the node applies it. Each route has a circuit:
//! after [`TRIPS_AFTER`] failures in a row (unreachable, a 5xx, a timeout)
//! its calls fail at once with `BACKEND_UNAVAILABLE` for [`OPEN_FOR`], then
//! one call tries again.

pub mod connect;
pub mod grpc;
pub mod http;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockgate_auth::{AuthError, ErrorCode, Identity};
use sockgate_core::hooks::reply;
use sockgate_core::hooks::{Admitted, App, Connect, Event, Refused, Renew, Reply, unknown_event};
use sockgate_core::policy::Action;
use sockgate_core::{BoxFuture, telemetry};
use wildmatch::WildMatch;

use crate::outbound::webhook::Webhook;

/// Where a route's calls go: `http(s)://` or `grpc://`.
pub enum Endpoint {
    /// A signed JSON POST.
    Http(http::Endpoint),
    /// A call of `proto/sockgate/v1/app.proto`.
    Grpc(grpc::Endpoint),
}

impl Endpoint {
    /// The endpoint at `url`, by its scheme.
    pub fn new(
        url: &str,
        secret: &[u8],
        timeout: Duration,
        max_reply: usize,
    ) -> Result<Self, String> {
        if url.starts_with("grpc://") {
            return grpc::Endpoint::new(url, secret, timeout).map(Endpoint::Grpc);
        }
        http::Endpoint::new(url, secret, timeout, max_reply).map(Endpoint::Http)
    }

    /// An event call; the answer in the HTTP form's JSON.
    async fn event(&self, event: &Event<'_>) -> Result<Vec<u8>, AuthError> {
        match self {
            Endpoint::Http(e) => e.call(event).await,
            Endpoint::Grpc(e) => e.event(event).await,
        }
    }
}

/// Failures in a row that open a route's circuit.
pub const TRIPS_AFTER: u32 = 5;
/// How long an open circuit refuses calls before one tries again.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

/// A route: the events it takes and where they go.
pub struct Route {
    /// The pattern, as configured (a metric label).
    pub pattern: String,
    matcher: WildMatch,
    /// The namespaces whose events it takes, when it is theirs only.
    namespace: Option<WildMatch>,
    endpoint: Endpoint,
    circuit: Circuit,
}

impl Route {
    /// A route for the events matching `pattern` (`*` and `?` wildcards).
    pub fn new(pattern: &str, endpoint: Endpoint) -> Self {
        Self {
            pattern: pattern.to_owned(),
            matcher: WildMatch::new(pattern),
            namespace: None,
            endpoint,
            circuit: Circuit::default(),
        }
    }

    /// The same route, for the events of `namespace` (a name or a
    /// pattern) only; `None` leaves it the main namespace's.
    pub fn in_namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace.map(WildMatch::new);
        self
    }
}

/// The app's backend: event routes, first match wins, and the connect
/// hook.
pub struct Backend {
    routes: Vec<Route>,
    /// What a reply's publishes are checked against.
    rules: reply::Rules,
    /// The connect hook, which also renews what it admitted.
    connect: Option<Arc<connect::ConnectHook>>,
    /// The room authorization webhook.
    authz: Option<Webhook>,
}

impl Backend {
    /// A backend of `routes`, tried in order, whose replies' publishes obey
    /// `rules`, with the connect hook `connect`.
    pub fn new(
        routes: Vec<Route>,
        rules: reply::Rules,
        connect: Option<Arc<connect::ConnectHook>>,
        authz: Option<Webhook>,
    ) -> Self {
        Self {
            routes,
            rules,
            connect,
            authz,
        }
    }

    /// Whether any event route is configured.
    pub fn routes_events(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Whether it holds the room authorization webhook.
    pub fn authorizes(&self) -> bool {
        self.authz.is_some()
    }

    /// The route of `event`: its namespace's own routes, when it has
    /// some; else the main namespace's. First match wins.
    fn route_of(&self, event: &Event<'_>) -> Option<&Route> {
        let ns = event.namespace;
        let own = |r: &&Route| r.namespace.as_ref().is_some_and(|m| m.matches(ns));
        let has_own = ns != "/" && self.routes.iter().any(|r| own(&r));
        self.routes
            .iter()
            .filter(|r| match has_own {
                true => own(r),
                false => r.namespace.is_none(),
            })
            .find(|r| r.matcher.matches(event.name))
    }

    async fn handle(&self, event: Event<'_>) -> Result<Reply, AuthError> {
        let Some(route) = self.route_of(&event) else {
            return Err(unknown_event(event.name));
        };
        let started = Instant::now();
        let result = self.call(route, &event).await;
        let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "OK");
        telemetry::app_call(&route.pattern, outcome, started.elapsed());
        if let Err(e) = &result {
            tracing::warn!(
                target: "sockgate::app",
                route = %route.pattern,
                event = %event.name.chars().take(100).collect::<String>(),
                user = %event.user_id,
                code = e.code.as_str(),
                reason = %e.message,
                "call to the app's backend failed"
            );
        }
        result
    }

    async fn call(&self, route: &Route, event: &Event<'_>) -> Result<Reply, AuthError> {
        route.circuit.allow()?;
        let body = route.endpoint.event(event).await;
        route.circuit.record(&body);
        reply::parse(&body?, &self.rules)
    }
}

impl App for Backend {
    fn on_event<'a>(&'a self, event: Event<'a>) -> BoxFuture<'a, Result<Reply, AuthError>> {
        Box::pin(self.handle(event))
    }

    fn authorize<'a>(
        &'a self,
        id: &'a Identity,
        room: &'a str,
        action: Action,
        fresh: bool,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            match &self.authz {
                Some(webhook) => webhook.decide(id, room, action, fresh).await,
                None => Ok(false),
            }
        })
    }

    fn has_connect_hook(&self) -> bool {
        self.connect.is_some()
    }

    fn on_connect<'a>(&'a self, connect: Connect<'a>) -> BoxFuture<'a, Result<Admitted, Refused>> {
        Box::pin(async move {
            match &self.connect {
                Some(hook) => hook.admit(connect).await,
                None => Err(Refused::Sockgate(AuthError::new(
                    ErrorCode::AuthRequired,
                    "no connect hook",
                ))),
            }
        })
    }

    fn on_renew<'a>(&'a self, renew: Renew<'a>) -> BoxFuture<'a, Result<Admitted, Refused>> {
        Box::pin(async move {
            match &self.connect {
                Some(hook) => hook.renew(&renew).await,
                None => Err(Refused::Sockgate(AuthError::new(
                    ErrorCode::AuthUnavailable,
                    "no connect hook",
                ))),
            }
        })
    }
}

/// A route's circuit breaker.
#[derive(Default)]
struct Circuit {
    state: Mutex<CircuitState>,
}

#[derive(Default)]
struct CircuitState {
    failures: u32,
    open_until: Option<Instant>,
    /// One call is trying the backend again after the circuit was open.
    probing: bool,
}

impl Circuit {
    fn allow(&self) -> Result<(), AuthError> {
        let mut s = self.state.lock().expect("circuit lock");
        match s.open_until {
            Some(until) if Instant::now() < until || s.probing => Err(AuthError::new(
                ErrorCode::BackendUnavailable,
                "the app's backend failed repeatedly; calls resume shortly",
            )),
            Some(_) => {
                s.probing = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record<T>(&self, result: &Result<T, AuthError>) {
        let mut s = self.state.lock().expect("circuit lock");
        s.probing = false;
        let down = matches!(result, Err(e) if matches!(e.code, ErrorCode::BackendUnavailable | ErrorCode::BackendTimeout));
        if !down {
            *s = CircuitState::default();
            return;
        }
        s.failures += 1;
        if s.failures >= TRIPS_AFTER {
            s.open_until = Some(Instant::now() + OPEN_FOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Result<(), AuthError> {
        Err(AuthError::new(ErrorCode::BackendUnavailable, "down"))
    }

    #[test]
    fn a_circuit_opens_after_failures_in_a_row_and_closes_on_success() {
        let c = Circuit::default();
        for _ in 0..TRIPS_AFTER - 1 {
            c.allow().unwrap();
            c.record(&down());
        }
        c.allow().unwrap();
        c.record(&Ok::<(), AuthError>(()));
        for _ in 0..TRIPS_AFTER {
            c.allow().unwrap();
            c.record(&down());
        }
        assert_eq!(c.allow().unwrap_err().code, ErrorCode::BackendUnavailable);
        // Past the cool-down one call probes; the others wait for it.
        c.state.lock().unwrap().open_until = Some(Instant::now());
        c.allow().unwrap();
        assert!(c.allow().is_err());
        c.record(&Ok::<(), AuthError>(()));
        c.allow().unwrap();
    }

    #[test]
    fn an_app_error_does_not_trip_the_circuit() {
        let c = Circuit::default();
        for _ in 0..TRIPS_AFTER * 2 {
            c.allow().unwrap();
            c.record(&Err::<(), _>(AuthError::new(
                ErrorCode::BackendError,
                "bad reply",
            )));
        }
        c.allow().unwrap();
    }
}
