//! Rooms of one namespace: which sockets a broadcast reaches.
//!
//! A room name is stored once, as an `Arc<str>` shared by the index and
//! every socket in the room (a socket keeps the names it joined, so that
//! leaving everything needs no scan of the index).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::io::{SioSocket, encode};
use crate::sio::{Kind, Value};

/// The rooms of one namespace.
#[derive(Debug, Default)]
pub struct Rooms {
    namespace: String,
    map: Mutex<HashMap<Arc<str>, Vec<Arc<SioSocket>>>>,
}

impl Rooms {
    /// The rooms of `namespace`.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            map: Mutex::default(),
        }
    }

    /// Puts `socket` in `room`; the name it is stored under (shared).
    pub(crate) fn join(&self, socket: &Arc<SioSocket>, room: &str) -> Option<Arc<str>> {
        let mut map = lock(&self.map);
        let name = match map.get_key_value(room) {
            Some((name, _)) => name.clone(),
            None => Arc::from(room),
        };
        let members = map.entry(name.clone()).or_default();
        if members.iter().any(|s| Arc::ptr_eq(s, socket)) {
            return None;
        }
        members.push(socket.clone());
        Some(name)
    }

    /// Takes `socket` out of `room`.
    pub(crate) fn leave(&self, socket: &SioSocket, room: &str) {
        let mut map = lock(&self.map);
        let Some(members) = map.get_mut(room) else {
            return;
        };
        if let Some(at) = members.iter().position(|s| std::ptr::eq(&**s, socket)) {
            members.swap_remove(at);
        }
        if members.is_empty() {
            map.remove(room);
        }
    }

    /// How many sockets are in `room`.
    pub fn len(&self, room: &str) -> usize {
        lock(&self.map).get(room).map_or(0, Vec::len)
    }

    /// Emits `event` with `args` to every socket in any of `rooms`, each
    /// once, but `except`. The packet is encoded once. Returns how many
    /// sockets it reached.
    pub fn emit(
        &self,
        rooms: &[&str],
        except: Option<&SioSocket>,
        event: &str,
        args: Vec<Value>,
    ) -> usize {
        let targets = self.members(rooms, except);
        if targets.is_empty() {
            return 0;
        }
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(event.to_owned()));
        data.extend(args);
        let Some(encoded) = encode(Kind::Event, &self.namespace, None, Some(Value::Array(data)))
        else {
            return 0;
        };
        for socket in &targets {
            socket.send_encoded(encoded.clone());
        }
        targets.len()
    }

    /// The sockets in any of `rooms`, each once, but `except`.
    fn members(&self, rooms: &[&str], except: Option<&SioSocket>) -> Vec<Arc<SioSocket>> {
        let map = lock(&self.map);
        let mut out: Vec<Arc<SioSocket>> = Vec::new();
        for room in rooms {
            for socket in map.get(*room).into_iter().flatten() {
                let excluded = except.is_some_and(|e| std::ptr::eq(e, &**socket));
                if !excluded && !out.iter().any(|s| Arc::ptr_eq(s, socket)) {
                    out.push(socket.clone());
                }
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
