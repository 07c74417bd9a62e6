//! Embedding sockgate in your own axum server.
//!
//! The gateway is a library first: `sockgate::app` returns an axum `Router`
//! (Socket.IO on `/socket.io/` plus `/healthz`) and the `SocketIo` handle,
//! so you can add your own routes next to it.
//!
//! ```sh
//! JWT_SECRET=an-example-secret-of-at-least-32-bytes cargo run -p sockgate --example embed
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use sockgate::store::{OnDisk, Revocations};
use sockgate::{Gateway, Lifecycle};
use sockgate_auth::{Rules, SourcePolicy, Verifier, VerifyKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("JWT_SECRET").map_err(|_| "set JWT_SECRET (32 bytes or more)")?;
    let rules = Rules::default();
    let key = VerifyKey::hmac(secret.as_bytes(), &rules)?;
    let revocations = Revocations::open(std::path::Path::new("sockgate-data")).await?;
    let verifier = Verifier::new(rules).with_hmac(key);
    let gateway = Gateway::new(
        verifier,
        SourcePolicy::default(),
        revocations,
        Lifecycle::default(),
    );
    let (router, io) = sockgate::app(Arc::new(gateway), None);
    // Your own route, served by the same listener: who is online right now.
    let router = router.route(
        "/online",
        get(move || {
            let io = io.clone();
            async move { io.len().to_string() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
