//! Keyset pages for the lists that grow with a mission: a page is the rows
//! after a given row in the list's order, so the thousandth page costs what
//! the first does (OFFSET would read and throw away every row before it).
//! A page shorter than its limit is the last.

use crate::backend::domain::FieldError;
use tokio_postgres::types::ToSql;

/// Rows per page when the request does not say.
pub const DEFAULT_PAGE: i64 = 100;
/// The most rows one page may hold.
pub const MAX_PAGE: i64 = 1000;

/// The page size asked for, checked.
pub fn page_limit(limit: Option<i64>) -> Result<i64, FieldError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(FieldError::new("limit", format!("must be from 1 to {MAX_PAGE}"))),
    }
}

/// A list's statement with only the filters a request sets, each one a
/// condition of its own rather than `$1 IS NULL OR …` (which keeps a cached
/// statement from using the filter's index once it goes generic). A
/// condition writes its value as `$?`; values are numbered in the order added.
#[derive(Default)]
pub struct Filters<'a> {
    conditions: Vec<String>,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Filters<'a> {
    /// Adds `condition` on `value`, when there is a value.
    pub fn and<T: ToSql + Sync>(mut self, condition: &str, value: Option<&'a T>) -> Self {
        if let Some(value) = value {
            self.params.push(value);
            self.conditions.push(condition.replace("$?", &format!("${}", self.params.len())));
        }
        self
    }

    /// `template` with `{where}` made the conditions (or `true`) and `{limit}`
    /// a parameter holding `limit`; and the parameters, in order.
    pub fn statement(mut self, template: &str, limit: &'a i64) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
        let conditions = if self.conditions.is_empty() { "true".to_string() } else { self.conditions.join(" AND ") };
        self.params.push(limit);
        let sql = template.replace("{where}", &conditions).replace("{limit}", &format!("${}", self.params.len()));
        (sql, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_one_to_a_thousand_rows() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        for bad in [0, -1, 1001] {
            assert_eq!(page_limit(Some(bad)).unwrap_err().field, "limit");
        }
    }

    #[test]
    fn only_the_filters_set_are_in_the_statement_numbered_in_order() {
        let template = "SELECT 1 WHERE {where} LIMIT {limit}";
        let (a, b, limit) = (1i32, "x".to_string(), 10i64);
        let sql = |a: Option<&i32>, b: Option<&String>| {
            let (sql, params) = Filters::default().and("a = $?", a).and("b = $?", b).statement(template, &limit);
            (sql, params.len())
        };
        assert_eq!(sql(None, None), ("SELECT 1 WHERE true LIMIT $1".into(), 1));
        assert_eq!(sql(Some(&a), None), ("SELECT 1 WHERE a = $1 LIMIT $2".into(), 2));
        assert_eq!(sql(None, Some(&b)), ("SELECT 1 WHERE b = $1 LIMIT $2".into(), 2));
        assert_eq!(sql(Some(&a), Some(&b)), ("SELECT 1 WHERE a = $1 AND b = $2 LIMIT $3".into(), 3));
    }
}
