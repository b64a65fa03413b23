//! Bearer tokens. A secret is `kq_` and 64 hex digits of OS randomness; the store keeps its
//! SHA-256 only. [`Authorized<P>`] is the extractor every protected handler takes: it finds the
//! caller's token and checks the permission `P`, so a handler without it cannot compile into a
//! route that reads tenant data.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kamachiq_domain::{Permission, Role, TenantId};
use kamachiq_store::Token;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of every secret: lets secret scanners recognise a leaked kamachiq token.
pub const SECRET_PREFIX: &str = "kq_";

/// A new secret, from the operating system's random source.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

/// What the store keeps of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who is calling: the token's identity, tenant and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub tenant: TenantId,
    pub roles: Vec<Role>,
}

impl From<Token> for Caller {
    fn from(t: Token) -> Self {
        Self {
            token_id: t.id,
            name: t.name,
            tenant: t.tenant,
            roles: t.roles,
        }
    }
}

/// A permission, as a type.
pub trait Need: Send + Sync + 'static {
    const PERMISSION: Permission;
}

/// Any role but `metrics`: read the tenant's data.
#[derive(Debug)]
pub struct Read;
/// `operator` or `admin`: submit, cancel, resume.
#[derive(Debug)]
pub struct Operate;
/// `admin`: manage tokens.
#[derive(Debug)]
pub struct Administer;
/// `metrics` or `admin`: scrape `/metrics`.
#[derive(Debug)]
pub struct ReadMetrics;

/// An approver role (`tech-lead`, `ops-lead`, `product-lead`, `exec-sponsor`) or `admin`:
/// decide approvals, attest readiness, approve proposals.
#[derive(Debug)]
pub struct Approve;
/// `admin` or `ops-lead`: roll a phase back, change circuit-breaker rules.
#[derive(Debug)]
pub struct Govern;

impl Need for Approve {
    const PERMISSION: Permission = Permission::Approve;
}
impl Need for Govern {
    const PERMISSION: Permission = Permission::Govern;
}
impl Need for Read {
    const PERMISSION: Permission = Permission::Read;
}
impl Need for Operate {
    const PERMISSION: Permission = Permission::Operate;
}
impl Need for Administer {
    const PERMISSION: Permission = Permission::Administer;
}
impl Need for ReadMetrics {
    const PERMISSION: Permission = Permission::ReadMetrics;
}

/// A caller holding permission `P`.
#[derive(Debug)]
pub struct Authorized<P: Need> {
    pub caller: Caller,
    need: PhantomData<P>,
}

impl<P: Need> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated(
                "no Authorization header; send `Authorization: Bearer <token>`",
            ))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`",
            ))?;
        let caller = state.tokens().caller(state, secret).await?;
        if !P::PERMISSION.allows(&caller.roles) {
            return Err(ApiError::Forbidden {
                role: P::PERMISSION.granted_by()[0],
            });
        }
        Ok(Self {
            caller,
            need: PhantomData,
        })
    }
}

/// Callers by secret hash, remembered briefly so a busy client does not cost a database read
/// per request. A token revoked through this server is forgotten at once; one revoked by
/// another process stops working within the time to live.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    known: RwLock<HashMap<String, (Caller, Instant)>>,
}

/// Most remembered tokens; the cache is cleared when full (rare: tokens are few).
const MAX_CACHED: usize = 10_000;

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            known: RwLock::new(HashMap::new()),
        }
    }

    async fn caller(&self, state: &AppState, secret: &str) -> Result<Caller, ApiError> {
        let hash = hash_secret(secret);
        if let Some((caller, at)) = self
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(caller.clone());
        }
        let token = state
            .engine()
            .store()
            .live_token_by_hash(&hash)
            .await?
            .ok_or(ApiError::Unauthenticated("unknown or revoked token"))?;
        let caller = Caller::from(token);
        let mut known = self
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= MAX_CACHED {
            known.clear();
        }
        known.insert(hash, (caller.clone(), Instant::now()));
        Ok(caller)
    }

    /// Forgets a token (after revoking it).
    pub fn forget(&self, token_id: &str) {
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, (caller, _)| caller.token_id != token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("kq_"));
        assert_eq!(a.len(), 3 + 64);
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
