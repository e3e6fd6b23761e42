//! Roles by bearer token. Operators submit and read, approvers decide tier 2,
//! governance decides tier 2 and 3, admins inject faults. A missing or unknown
//! token is a 401 and a known token with the wrong role a 403; either way the
//! handler returns before touching anything.

use super::error::ApiError;
use super::state::AppState;
use crate::spec::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The accepted tokens. `Debug` shows roles only, never a token.
#[derive(Clone)]
pub struct Tokens {
    by_token: HashMap<String, Role>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut roles: Vec<&str> = self.by_token.values().map(|r| r.as_str()).collect();
        roles.sort();
        write!(f, "Tokens({})", roles.join(","))
    }
}

/// Tokens shorter than this are refused: they could be guessed.
const MIN_TOKEN_LENGTH: usize = 16;

impl Tokens {
    /// Parses `role=token,role=token` (the `GRACE_TOKENS` format). Errors name
    /// the entry by position and never repeat a token.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim().strip_prefix("GRACE_TOKENS=").unwrap_or(spec.trim());
        let mut by_token = HashMap::new();
        for (index, entry) in spec.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let position = index + 1;
            let (role, token) =
                entry.split_once('=').ok_or_else(|| format!("token entry {position} is not role=token"))?;
            let role = Role::parse(role.trim()).ok_or_else(|| {
                format!("token entry {position}: unknown role (expected operator, approver, governance or admin)")
            })?;
            let token = token.trim();
            if token.len() < MIN_TOKEN_LENGTH || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "token entry {position} ({role}): a token must be at least {MIN_TOKEN_LENGTH} printable characters"
                ));
            }
            by_token.insert(token.to_string(), role);
        }
        if by_token.is_empty() {
            return Err("no tokens given".into());
        }
        Ok(Self { by_token })
    }

    /// One random token per role.
    pub fn generate() -> Self {
        let by_token =
            Role::ALL.into_iter().map(|role| (Alphanumeric.sample_string(&mut rand::rng(), 32), role)).collect();
        Self { by_token }
    }

    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.by_token.get(token).copied()
    }

    /// A token for `role`, for in-process callers (the scenario, tests).
    pub fn token_for(&self, role: Role) -> Option<&str> {
        let mut tokens: Vec<&String> = self.by_token.iter().filter(|(_, r)| **r == role).map(|(t, _)| t).collect();
        tokens.sort();
        tokens.first().map(|t| t.as_str())
    }

    /// The `GRACE_TOKENS=...` line that `parse` reads back.
    pub fn to_env_line(&self) -> String {
        let mut entries: Vec<String> = self.by_token.iter().map(|(token, role)| format!("{role}={token}")).collect();
        entries.sort();
        format!("GRACE_TOKENS={}", entries.join(","))
    }

    /// Writes the tokens to a new file only its owner can read.
    pub fn write_private_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        writeln!(file, "{}", self.to_env_line())
    }
}

/// Who is calling, established from the bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// A stable, non-secret name for the token, recorded as `decided_by` and
    /// as the log's actor: the role and the first hex digits of its hash.
    pub identity: String,
}

impl Caller {
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            let needed: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden { needed: needed.join(" or ") })
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let role = state.tokens.role_of(token).ok_or(ApiError::Unauthorized)?;
        let digest = Sha256::digest(token.as_bytes());
        Ok(Self { role, identity: format!("{role}:{}", &hex::encode(digest)[..8]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_their_env_line() {
        let tokens = Tokens::generate();
        let again = Tokens::parse(&tokens.to_env_line()).unwrap();
        for role in Role::ALL {
            let token = tokens.token_for(role).unwrap();
            assert_eq!(again.role_of(token), Some(role));
        }
    }

    #[test]
    fn bad_token_specs_are_refused_without_echoing_tokens() {
        for (spec, expected) in [
            ("operator", "not role=token"),
            ("root=abcdefghijklmnopqrstuvwxyz", "unknown role"),
            ("admin=short-secret", "at least 16"),
            ("", "no tokens"),
        ] {
            let err = Tokens::parse(spec).unwrap_err();
            assert!(err.contains(expected), "{spec}: {err}");
            assert!(!err.contains("short-secret") && !err.contains("abcdefghij"), "{err}");
        }
        let tokens = Tokens::generate();
        let shown = format!("{tokens:?}");
        assert_eq!(shown, "Tokens(admin,approver,governance,operator)");
        assert!(Role::ALL.iter().all(|r| !shown.contains(tokens.token_for(*r).unwrap())));
    }
}
