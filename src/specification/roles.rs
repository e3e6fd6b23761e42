//! Roles by bearer token (docs/design.md): operators submit and read, approvers
//! decide tier 2, governance decides tier 2 and 3 (it outranks approvers),
//! admins inject faults. Who may decide which tier is decided here and only
//! here: the backend enforces it, the scenario picks its deciding role by it.

use super::policy::Tier;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Operator,
    Approver,
    Governance,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Approver, Role::Governance, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Approver => "approver",
            Self::Governance => "governance",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every role that decides approvals of some tier.
pub const DECIDING_ROLES: &[Role] = &[Role::Approver, Role::Governance];

/// Who may decide an approval of `tier`, least senior first: approvers and
/// governance decide tier 2, only governance decides tier 3.
pub fn deciders(tier: Tier) -> &'static [Role] {
    match tier {
        Tier::Auto | Tier::Approver => DECIDING_ROLES,
        Tier::Governance => &DECIDING_ROLES[1..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_decide_tier_2_only_governance_decides_tier_3() {
        assert_eq!(deciders(Tier::Approver), [Role::Approver, Role::Governance]);
        assert_eq!(deciders(Tier::Governance), [Role::Governance]);
        for tier in [Tier::Approver, Tier::Governance] {
            assert!(deciders(tier).iter().all(|r| DECIDING_ROLES.contains(r)));
            assert!(!deciders(tier).contains(&Role::Operator) && !deciders(tier).contains(&Role::Admin));
        }
    }

    #[test]
    fn roles_parse_their_own_names_only() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
