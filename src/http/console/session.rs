//! The console's sessions: an admin token exchanged at sign-in for a random session id held
//! in an HttpOnly, SameSite=Strict cookie (Secure behind https). Only the id's SHA-256 is kept,
//! in this process's memory, with the admin it signed in, its CSRF token and its age; a
//! session ends at sign-out, after [`IDLE`] without a request, after [`LIFETIME`], or as soon
//! as the admin token it was opened with is revoked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The cookie that carries the session id.
pub const COOKIE: &str = "roster_console";
/// A session unused for this long is ended.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// No session lasts longer than this.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The most sessions held at once; the oldest is ended to make room for a new one.
pub const MAX_SESSIONS: usize = 10_000;

/// A signed-in admin's session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The admin token's id, or `config` for the configured token.
    pub who: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The SHA-256 of the session's id, its key here.
    key: [u8; 32],
    opened: Instant,
    seen: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The sessions this process holds, by the SHA-256 of their ids.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<[u8; 32], Session>>,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for `who`; answers the id to set in the cookie (never stored).
    pub fn open(&self, who: String) -> String {
        self.open_at(who, Instant::now())
    }

    fn open_at(&self, who: String, now: Instant) -> String {
        let id = random();
        let mut held = self.held();
        if held.len() >= MAX_SESSIONS {
            held.retain(|_, s| live(s, now));
        }
        if held.len() >= MAX_SESSIONS {
            if let Some(oldest) = held.iter().min_by_key(|(_, s)| s.opened).map(|(k, _)| *k) {
                held.remove(&oldest);
            }
        }
        let session = Session {
            key: key(&id),
            who,
            csrf: random(),
            opened: now,
            seen: now,
        };
        held.insert(key(&id), session);
        id
    }

    /// The live session with this id, marked as used now; None (and forgotten) when it has
    /// expired.
    pub fn touch(&self, id: &str) -> Option<Session> {
        self.touch_at(id, Instant::now())
    }

    fn touch_at(&self, id: &str, now: Instant) -> Option<Session> {
        let k = key(id);
        let mut held = self.held();
        let session = held.get_mut(&k)?;
        if !live(session, now) {
            held.remove(&k);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Ends the session with this id, if there is one.
    pub fn close(&self, id: &str) {
        self.held().remove(&key(id));
    }

    /// Ends `session`.
    pub fn close_for(&self, session: &Session) {
        self.held().remove(&session.key);
    }

    /// How many sessions are held (live or not yet found expired).
    pub fn len(&self) -> usize {
        self.held().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.seen) < IDLE && now.duration_since(s.opened) < LIFETIME
}

/// The session id the request's `Cookie` headers carry, if any.
pub fn cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that hands the browser session `id` (`None`: that clears it).
pub fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_idles_out_or_is_closed() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open_at("config".into(), t0);
        let s = sessions
            .touch_at(&id, t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!(s.who, "config");
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches("forged"));
        assert!(sessions.touch_at("another", t0).is_none());
        // Used a minute in, so idle from then.
        let late = t0 + Duration::from_secs(60) + IDLE;
        assert!(sessions.touch_at(&id, late).is_none());
        assert!(sessions.is_empty(), "an expired session is forgotten");

        let id = sessions.open_at("config".into(), t0);
        sessions.close(&id);
        assert!(sessions.touch_at(&id, t0).is_none());
    }

    #[test]
    fn no_session_outlives_its_lifetime_however_often_it_is_used() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open_at("a".into(), t0);
        let mut now = t0;
        while now.duration_since(t0) + IDLE / 2 < LIFETIME {
            now += IDLE / 2;
            assert!(sessions.touch_at(&id, now).is_some());
        }
        assert!(sessions.touch_at(&id, t0 + LIFETIME).is_none());
    }

    #[test]
    fn the_oldest_session_makes_room_when_all_are_taken() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.open_at("first".into(), t0);
        for i in 1..MAX_SESSIONS {
            sessions.open_at(format!("{i}"), t0 + Duration::from_millis(i as u64));
        }
        let now = t0 + Duration::from_secs(1);
        sessions.open_at("new".into(), now);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.touch_at(&first, now).is_none());
    }

    #[test]
    fn the_cookie_is_read_among_others_and_set_strictly() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; roster_console=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h), Some("abc"));
        let set = set_cookie(Some("abc"), true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie(None, false).contains("Secure"));
    }
}
