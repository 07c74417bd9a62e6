//! The history API: a room's kept messages, for its members
//! (`room:history`) and the app (`GET /api/rooms/{room}/history`), read
//! from the recovery history (see [`crate::recovery`]). A room keeps what
//! the history's window and bounds keep of it, unless its options say
//! `recover = false`.

use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::requests::{HistoryAck, HistoryMessage};
use sockgate_protocol::rooms::RoomKey;

use super::Node;
use crate::recovery::{Offset, RoomHistory};
use crate::rooms::validate;
use crate::session::Session;

impl Node {
    /// `room:history`: for a member of `room` only.
    pub async fn room_history_for(
        &self,
        session: &Session,
        room: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<RoomHistory, AuthError> {
        validate(room)?;
        let key = session.room_key(room);
        if !session.in_room(&key) {
            return Err(AuthError::new(
                ErrorCode::Forbidden,
                "join the room to read its history",
            ));
        }
        self.room_history(&key, since, limit).await
    }

    /// The newest `limit` messages kept of the room stored under `room`
    /// (its key), after `since` (an offset) when given. `NOT_FOUND` where nothing is kept (recovery
    /// off, or the room's `recover = false`).
    pub async fn room_history(
        &self,
        room: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<RoomHistory, AuthError> {
        validate(RoomKey::parse(room).name)?;
        if self.recovery.is_none() {
            return Err(AuthError::new(
                ErrorCode::NotFound,
                "no history is kept: recovery is off (SOCKGATE_RECOVERY_WINDOW=0)",
            ));
        }
        let options = self.options_of(room);
        if !options.recover {
            return Err(AuthError::new(
                ErrorCode::NotFound,
                "this room's messages are not kept (recover = false)",
            ));
        }
        let after = match since {
            Some(since) => since.parse::<Offset>().map_err(|_| {
                AuthError::new(
                    ErrorCode::InvalidRequest,
                    "since must be an offset ({ms}-{seq})",
                )
            })?,
            None => Offset::default(),
        };
        let mut history = self
            .history
            .room(room, after, limit.max(1))
            .await
            .map_err(|e| {
                AuthError::new(
                    ErrorCode::BackendUnavailable,
                    format!("the history cannot be read now ({}); retry", e.0),
                )
            })?;
        // Older than the room's `history_ttl`: gone, though the room had no
        // message since to push it out.
        if let Some(ttl) = options.keep.ttl_ms {
            let oldest = self.clock.now_ms().saturating_sub(ttl);
            let before = history.messages.len();
            history.messages.retain(|e| e.offset.ms >= oldest);
            if history.messages.len() < before {
                history.complete = false;
            }
        }
        Ok(history)
    }
}

impl RoomHistory {
    /// The answer of `room:history` (`ok: Some(true)`) and of the admin
    /// API (`ok: None`).
    pub fn into_ack(self, room: &str, ok: Option<bool>) -> HistoryAck<'_> {
        let messages = self
            .messages
            .into_iter()
            .map(|e| HistoryMessage {
                offset: e.offset.to_string(),
                event: e.message.event,
                data: e.message.data,
            })
            .collect();
        HistoryAck {
            ok,
            room,
            messages,
            offset: self.last.map(|o| o.to_string()),
            epoch: self.epoch,
            complete: self.complete,
        }
    }
}
