//! Statements prepared once per pooled connection and reused. tokio-postgres
//! prepares an SQL string on every call (a round trip of its own); the request
//! path runs the same few statements all day, so caching them halves its round
//! trips. Works on pooled connections and their transactions alike.

use deadpool_postgres::GenericClient;
use std::future::Future;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub trait Prepared: GenericClient {
    /// Executes `sql`, returning the rows affected.
    fn run<'a>(&'a self, sql: &'a str, params: Params<'a>) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        async move { self.execute(&self.prepare_cached(sql).await?, params).await }
    }

    /// Exactly one row.
    fn one<'a>(&'a self, sql: &'a str, params: Params<'a>) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        async move { self.query_one(&self.prepare_cached(sql).await?, params).await }
    }

    /// At most one row.
    fn opt<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        async move { self.query_opt(&self.prepare_cached(sql).await?, params).await }
    }

    /// All rows.
    fn all<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        async move { self.query(&self.prepare_cached(sql).await?, params).await }
    }
}

impl<T: GenericClient> Prepared for T {}
