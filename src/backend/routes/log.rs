//! The immutable log and the Trigger Mesh, seen from outside: reading and
//! verifying the chain, streaming events (Server-Sent Events), and a ping that
//! proves an event makes the whole trip — committed, chained, announced, bridged
//! and delivered.

use crate::api::log::{ChainReport, LogEntryView, PingResult};
use crate::backend::auth::Caller;
use crate::backend::domain::FieldError;
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::events::{self, NewEvent};
use crate::backend::extract::ApiQuery;
use crate::backend::mesh::{MeshEvent, Pattern, SubscriptionRefused, MAX_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS_PER_TOKEN};
use crate::backend::state::AppState;
use crate::db::rows::FromRow;
use crate::immutable_log::{self, ProofOptions};
use crate::specification::EventKind;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogPage {
    /// Entries after this seq (default 0: from the start).
    #[param(minimum = 0)]
    pub after_seq: Option<i64>,
    /// At most this many entries (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/log", tag = "log", security(("bearer" = [])), params(LogPage),
    responses((status = 200, body = Vec<LogEntryView>)))]
pub async fn entries(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(page): ApiQuery<LogPage>,
) -> Result<Json<Vec<LogEntryView>>, ApiError> {
    let after = page.after_seq.unwrap_or(0);
    if after < 0 {
        return Err(FieldError::new("after_seq", "must not be negative").into());
    }
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(FieldError::new("limit", "must be from 1 to 1000").into());
    }
    let rows = state
        .pool
        .get()
        .await?
        .query(
            "SELECT seq, recorded_at, actor, action, resource, subsystem, payload, result, prev_hash, entry_hash
               FROM immutable_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &limit],
        )
        .await?;
    Ok(Json(rows.iter().map(LogEntryView::from_row).collect::<Result<_, _>>()?))
}

impl FromRow for LogEntryView {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            seq: row.try_get("seq")?,
            recorded_at: row.try_get("recorded_at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            subsystem: row.try_get("subsystem")?,
            payload: row.try_get("payload")?,
            result: row.try_get("result")?,
            prev_hash: row.try_get("prev_hash")?,
            entry_hash: row.try_get("entry_hash")?,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyRange {
    /// First seq to check (default 1).
    #[param(minimum = 1)]
    pub from: Option<i64>,
    /// Last seq to check: not below `from`, and at most 199,999 past it
    /// (default: that far). A range wider than that is a 422.
    #[param(minimum = 1)]
    pub to: Option<i64>,
}

/// The most entries one call re-hashes: what a request may cost is bounded
/// (well under a second here) however long the log is.
const MAX_VERIFIED_PER_CALL: i64 = 200_000;

/// Recomputes the chain: contiguous seqs, linked hashes, and every entry hash
/// matching its contents. With no range, from where the last proof ended (a
/// checkpoint the log still holds) up to the head — at most
/// `MAX_VERIFIED_PER_CALL` entries, checkpointed where it stopped, `remaining`
/// saying what is left for the next call; with a range, over exactly that
/// range (at most as many entries; `to` defaults to that far).
#[utoipa::path(get, path = "/api/log/verify", tag = "log", security(("bearer" = [])), params(VerifyRange),
    responses((status = 200, body = ChainReport)))]
pub async fn verify(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(range): ApiQuery<VerifyRange>,
) -> Result<Json<ChainReport>, ApiError> {
    if range.from.is_none() && range.to.is_none() {
        let reader = Arc::new(state.pool.get().await?);
        let options = ProofOptions {
            full: false,
            anchor: None,
            verified_by: "grace backend",
            max_entries: Some(MAX_VERIFIED_PER_CALL),
            sample: immutable_log::DEFAULT_SAMPLE,
        };
        return Ok(Json(immutable_log::prove(&[reader], options).await?.into()));
    }
    let from = range.from.unwrap_or(1);
    if from < 1 {
        return Err(FieldError::new("from", "must be at least 1").into());
    }
    let to = range.to.unwrap_or(from.saturating_add(MAX_VERIFIED_PER_CALL - 1));
    if to < from {
        return Err(FieldError::new("to", "must not be below from").into());
    }
    if to - from >= MAX_VERIFIED_PER_CALL {
        return Err(FieldError::new("to", format!("a range may cover at most {MAX_VERIFIED_PER_CALL} entries")).into());
    }
    let verdict = immutable_log::verify_range(&**state.pool.get().await?, from, to).await?;
    Ok(Json(verdict.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamFilter {
    /// `*` (default), a prefix such as `agentic.*`, or an event name.
    #[param(pattern = r"^(\*|[a-z0-9_.]+(\.\*)?)$")]
    pub pattern: Option<String>,
    pub mission_id: Option<Uuid>,
}

/// The Trigger Mesh as Server-Sent Events: each event's `event:` is its type,
/// `id:` its log seq, `data:` the event as JSON.
#[utoipa::path(get, path = "/api/events/stream", tag = "log", security(("bearer" = [])), params(StreamFilter),
    responses((status = 200, content_type = "text/event-stream", body = MeshEvent),
              (status = 429, body = ErrorBody, description = "this token's streams are at their cap"),
              (status = 503, body = ErrorBody, description = "the backend's streams are at their cap")))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<StreamFilter>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let pattern =
        Pattern::parse(filter.pattern.as_deref().unwrap_or("*")).map_err(|e| FieldError::new("pattern", e))?;
    let subscription = state.mesh.subscribe(&caller.identity, pattern, filter.mission_id).map_err(refusal)?;
    let events = ReceiverStream::new(subscription).map(|event| {
        let data = serde_json::to_string(&*event).expect("events serialize");
        Ok(Event::default().event(event.event_type.clone()).id(event.log_seq.to_string()).data(data))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn refusal(refused: SubscriptionRefused) -> ApiError {
    match refused {
        SubscriptionRefused::TokenAtCap => ApiError::TooManyRequests(format!(
            "this token holds {MAX_SUBSCRIPTIONS_PER_TOKEN} event streams already; close one first"
        )),
        SubscriptionRefused::MeshAtCap => {
            ApiError::AtCapacity(format!("the backend serves {MAX_SUBSCRIPTIONS} event streams already; retry later"))
        }
    }
}

/// How long a ping may take before it counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes a `mesh.ping` event and waits until this server's mesh delivers
/// it: proof that the sequencer, NOTIFY and the mesh bridge all work.
#[utoipa::path(post, path = "/api/mesh/ping", tag = "log", security(("bearer" = [])),
    responses((status = 200, body = PingResult)))]
pub async fn ping(State(state): State<AppState>, caller: Caller) -> Result<Json<PingResult>, ApiError> {
    let started = Instant::now();
    let mut deliveries = state
        .mesh
        .subscribe(&caller.identity, Pattern::Exact(EventKind::MeshPing.name().into()), None)
        .map_err(refusal)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let ids = events::record(
        &tx,
        &[NewEvent {
            kind: EventKind::MeshPing,
            actor: caller.identity.clone(),
            resource: "mesh".into(),
            mission_id: None,
            contract_id: None,
            approval_id: None,
            payload: json!({ "sent_by": caller.identity }),
            result: "ok",
        }],
    )
    .await?;
    tx.commit().await?;
    let wanted = ids[0];
    let delivered = tokio::time::timeout(PING_TIMEOUT, async {
        while let Some(event) = deliveries.recv().await {
            if event.id == wanted {
                return Some(event);
            }
        }
        None
    })
    .await;
    match delivered {
        Ok(Some(event)) => Ok(Json(PingResult {
            event_id: event.id,
            log_seq: event.log_seq,
            round_trip_ms: started.elapsed().as_secs_f64() * 1000.0,
        })),
        _ => Err(ApiError::MeshUnavailable(format!("ping event {wanted} not delivered within {PING_TIMEOUT:?}"))),
    }
}
