//! Verified tokens, remembered until they expire: a publisher reusing its token is checked
//! with one lookup instead of a signature verification per request.
//!
//! Keyed by the token's exact text, so only the very bytes that were verified hit. Bounded:
//! when full, expired entries are dropped first, then an arbitrary one, so a flood of
//! distinct valid tokens costs verification time but never memory beyond the bound.

use std::collections::HashMap;
use std::sync::Mutex;

use super::jwt::Audience;
use crate::identity::SenderIdentity;

/// What a verified token established; its time and audience are checked on every use.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub identity: SenderIdentity,
    pub audience: Audience,
    pub expires: i64,
    pub not_before: Option<i64>,
}

pub struct TokenCache {
    entries: Mutex<HashMap<Box<str>, CachedToken>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, token: &str) -> Option<CachedToken> {
        self.entries
            .lock()
            .expect("not poisoned")
            .get(token)
            .cloned()
    }

    pub fn insert(&self, token: &str, verified: CachedToken) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= self.capacity && !entries.contains_key(token) {
            let now = super::oidc::unix_now();
            entries.retain(|_, t| t.expires.saturating_add(super::oidc::LEEWAY_SECS) >= now);
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().cloned()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(token.into(), verified);
    }

    pub fn clear(&self) {
        self.entries.lock().expect("not poisoned").clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("not poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expires: i64) -> CachedToken {
        CachedToken {
            identity: SenderIdentity::resource("PingSource", "ns", "p"),
            audience: Audience::One("a".into()),
            expires,
            not_before: None,
        }
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = TokenCache::new(3);
        let future = super::super::oidc::unix_now() + 3600;
        for i in 0..10 {
            cache.insert(&format!("t{i}"), entry(future));
            assert!(cache.len() <= 3);
        }
        assert!(cache.get("t9").is_some());
    }

    #[test]
    fn expired_entries_make_room_first() {
        let cache = TokenCache::new(2);
        let future = super::super::oidc::unix_now() + 3600;
        cache.insert("old", entry(0));
        cache.insert("kept", entry(future));
        cache.insert("new", entry(future));
        assert!(cache.get("old").is_none());
        assert!(cache.get("kept").is_some());
        assert!(cache.get("new").is_some());
    }
}
