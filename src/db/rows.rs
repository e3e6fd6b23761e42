//! Rows read by column name, never by position: a type that comes out of a
//! query says how with `FromRow`, naming each column, so adding or reordering
//! a column cannot silently shift another. The specification's enums are
//! stored as their texts (and tiers as their level) and convert here, so a
//! status read back that the specification does not know is an error, not a
//! string that happens to compare unequal. A column whose rule is a domain
//! (`contract_status`, `tier`, ...) takes them as its base type.

use crate::specification::{
    ApprovalStatus, BenchmarkKind, ConfidencePath, ContractStatus, Decision, SnapshotStatus, TaskStatus, Tier,
};
use std::error::Error;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type};
use tokio_postgres::Row;

/// A value built from one row, reading its columns by name.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error>;
}

pub(crate) type BoxedError = Box<dyn Error + Sync + Send>;

/// The type a value of `ty` travels as: a domain's base type, which is what
/// PostgreSQL asks a parameter bound to a domain-typed column to be.
pub(crate) fn base(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base,
        _ => ty,
    }
}

/// Stores and reads an enum made by `text_enum!` as its text (the control
/// plane's statuses use it too).
macro_rules! stored_as_text {
    ($($name:ty),+) => {$(
        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, $crate::db::rows::BoxedError> {
                tokio_postgres::types::ToSql::to_sql(&self.as_str(), ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts($crate::db::rows::base(ty))
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, $crate::db::rows::BoxedError> {
                Ok(<&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?.parse()?)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    )+};
}

pub(crate) use stored_as_text;

stored_as_text!(ContractStatus, ApprovalStatus, TaskStatus, SnapshotStatus, Decision, ConfidencePath, BenchmarkKind);

/// A tier is stored as its level (smallint).
impl ToSql for Tier {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxedError> {
        self.level().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <i16 as ToSql>::accepts(base(ty))
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Tier {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxedError> {
        let level = i16::from_sql(ty, raw)?;
        Tier::from_level(level).ok_or_else(|| format!("tier {level} is not 1, 2 or 3").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i16 as FromSql>::accepts(ty)
    }
}
