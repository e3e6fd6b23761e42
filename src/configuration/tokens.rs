//! Bearer tokens by role: what the backend accepts (`grace serve`), and what
//! a client of it holds (`scenario` has one per role; `load`, `worker` and
//! `health` hold only the one token they were given, and simply lack the
//! others). One type for both, so the `GRACE_TOKENS` format is parsed once.
//! Tokens never print: `Debug` shows roles only, and parse errors name an
//! entry by its position, never its text.

use crate::specification::Role;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Tokens and the role each one stands for; none by default.
#[derive(Clone, Default)]
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
            if let Some(first) = by_token.insert(token.to_string(), role).filter(|first| *first != role) {
                // A token names one role: given for two, one of them would be lost.
                return Err(format!("token entry {position} ({role}): the same token as the {first} token's"));
            }
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

    /// These tokens with `token` as `role`'s only one: what a command given a
    /// single `--token` holds. The backend judges the token; it is not
    /// checked here.
    pub fn with(mut self, role: Role, token: &SecretString) -> Self {
        self.by_token.retain(|_, held| *held != role);
        self.by_token.insert(token.expose_secret().to_string(), role);
        self
    }

    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.by_token.get(token).copied()
    }

    /// A token for `role` (the first in order, when there are several).
    pub fn token_for(&self, role: Role) -> Option<&str> {
        self.by_token.iter().filter(|(_, r)| **r == role).map(|(t, _)| t.as_str()).min()
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
            ("operator=abcdefghijklmnopqrstuvwxyz,admin=abcdefghijklmnopqrstuvwxyz", "the same token as the operator"),
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

    #[test]
    fn a_single_token_is_its_roles_only_and_the_others_are_lacking() {
        let tokens = Tokens::default().with(Role::Operator, &SecretString::from("an-operator-token"));
        assert_eq!(tokens.token_for(Role::Operator), Some("an-operator-token"));
        assert_eq!(tokens.token_for(Role::Approver), None);
        assert_eq!(format!("{tokens:?}"), "Tokens(operator)");
        let both = Tokens::parse("operator=an-older-operator-token,admin=an-admin-token-here").unwrap();
        let both = both.with(Role::Operator, &SecretString::from("an-operator-token"));
        assert_eq!(both.token_for(Role::Operator), Some("an-operator-token"), "the single token replaces the role's");
        assert_eq!(both.token_for(Role::Admin), Some("an-admin-token-here"));
    }
}
