//! Who is calling, by bearer token: the roles are the specification's
//! (`specification::roles`), the accepted tokens the server's settings
//! (`configuration::Tokens`). A missing or unknown token is a 401 and a known
//! token with the wrong role a 403; either way the handler returns before
//! touching anything. A route that admits only some roles takes an
//! [`Admitted`] caller, so its role check runs as the request's head is read,
//! before its body is: an operator posting a malformed decision is told 403,
//! not how to fix the body it may not send.

use super::error::ApiError;
use super::state::AppState;
use crate::specification::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use std::ops::Deref;

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

/// Which roles a route admits.
pub trait Admits {
    const ROLES: &'static [Role];
}

/// Operators: they submit errors, chat, tasks and missions.
pub struct Operators;
/// Approvers and governance: the roles that decide approvals of some tier
/// (which tier is checked against the approval itself).
pub struct Deciders;
/// Admins: fault injection.
pub struct Admins;

impl Admits for Operators {
    const ROLES: &'static [Role] = &[Role::Operator];
}
impl Admits for Deciders {
    const ROLES: &'static [Role] = crate::specification::DECIDING_ROLES;
}
impl Admits for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// A caller whose role the route admits (401 without a known token, 403 with
/// the wrong role), established before any body is read.
pub struct Admitted<A> {
    caller: Caller,
    admits: PhantomData<A>,
}

impl<A> Deref for Admitted<A> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<A: Admits> FromRequestParts<AppState> for Admitted<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(A::ROLES)?;
        Ok(Self { caller, admits: PhantomData })
    }
}
