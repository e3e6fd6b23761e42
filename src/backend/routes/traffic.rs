//! The everyday traffic the load hits: chat and tasks. Every write carries the
//! client's idempotency key: a retry returns what the first request stored and
//! writes nothing; reusing a key for a different request is a 409.

use super::actions::replay_headers;
use crate::api::traffic::{ChatBody, ChatReply, NewTask, Task, TaskChange};
use crate::backend::auth::{Admitted, Caller, Operators};
use crate::backend::counters;
use crate::backend::domain::{bounded_text, storable_json, FieldError, IdempotencyKey};
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::events::{self, NewEvent};
use crate::backend::extract::{parse_id, ApiJson, PathId};
use crate::backend::prepared::Prepared;
use crate::backend::state::AppState;
use crate::db::rows::FromRow;
use crate::specification::{EventKind, TaskStatus};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::LazyLock;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

/// A chat exchange in one statement, so one round trip and no transaction
/// to hold open: the user's message (nothing for a known key: a replay), the
/// assistant's reply — built only from the mission's live state and the
/// message, so the same state and message always get the same reply — the
/// `chat.exchanged` event, and the counts (two messages, one event; see
/// `counters`). `$1` mission, `$2` session, `$3` message, `$4` key, `$5` the
/// event's type, `$6` its actor. Answers
/// whether the mission exists, and the new ids and reply (none on a replay).
pub(crate) static CHAT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH mission AS (
            SELECT m.id, m.name, m.status, p.total_actions, p.completed_actions, p.failed_actions,
                   p.rolled_back_actions, p.progress_ratio
              FROM missions m JOIN mission_progress p ON p.mission_id = m.id WHERE m.id = $1),
         sent AS (
            INSERT INTO chat_messages (mission_id, session_id, role, content, idempotency_key)
            SELECT id, $2::text, 'user', $3, $4::text FROM mission
            ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id, mission_id),
         reply AS (
            INSERT INTO chat_messages (mission_id, session_id, role, content, reply_to)
            SELECT m.id, $2, 'assistant',
                   format('Mission %s is %s: %s actions, %s verified, %s failed or rejected, %s rolled back; '
                          '%s%% done. You said: \"%s\"',
                          m.name, m.status, m.total_actions, m.completed_actions, m.failed_actions,
                          m.rolled_back_actions, round(m.progress_ratio * 100)::bigint, left($3, 80)),
                   s.id
              FROM sent s CROSS JOIN mission m
            RETURNING id, reply_to, content),
         input AS (
            SELECT {NEXT_ID} AS id, $5::text AS event_type, s.mission_id, NULL::uuid AS contract_id,
                   NULL::uuid AS approval_id, payload, $6::text AS actor, 'chat/' || s.id AS resource,
                   'ok' AS result, 1 AS ord
              FROM sent s JOIN reply r ON r.reply_to = s.id,
                   LATERAL (SELECT jsonb_build_object('session_id', $2::text, 'message_id', s.id,
                                                      'reply_id', r.id) AS payload) p),
         {STORED},
         counted AS ({})
         SELECT EXISTS (SELECT FROM mission) AS mission_found, s.id AS message_id, r.id AS reply_id,
                r.content AS reply
           FROM (SELECT) one LEFT JOIN sent s ON true LEFT JOIN reply r ON true",
        counters::adding_to(
            &["chat_messages", "events"],
            "SELECT mission_id, 2 AS chat_messages, 1 AS events FROM input"
        ),
        STORED = events::STORED,
        NEXT_ID = events::NEXT_ID,
    )
});

/// Stores a submitted task (nothing for a known key), its `task.submitted`
/// event and the counts, in one statement: one round trip and no transaction
/// held open across several (a submission that held its counter slot over
/// four round trips queued the mission's other writers behind it). `$1`
/// mission, `$2` title, `$3` payload, `$4` key, `$5` the event's type, `$6`
/// its actor. Answers the task (nothing on a replay).
pub(crate) static SUBMIT_TASK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH task AS (
            INSERT INTO tasks (mission_id, title, payload, idempotency_key) VALUES ($1, $2::text, $3, $4::text)
            ON CONFLICT (idempotency_key) DO NOTHING RETURNING {TASK_COLUMNS}),
         input AS (
            SELECT {NEXT_ID} AS id, $5::text AS event_type, t.mission_id, t.contract_id, NULL::uuid AS approval_id,
                   jsonb_build_object('task_id', t.id, 'status', t.status, 'title', t.title) AS payload,
                   $6::text AS actor, 'task/' || t.id AS resource, 'ok' AS result, 1 AS ord
              FROM task t),
         {STORED},
         counted AS ({})
         SELECT * FROM task",
        counters::adding_to(
            &["tasks", "events"],
            "SELECT mission_id, count(*) AS tasks, count(*) AS events FROM input GROUP BY mission_id"
        ),
        STORED = events::STORED,
        NEXT_ID = events::NEXT_ID,
    )
});

/// Sends a chat message to the mission's assistant; both messages are stored.
#[utoipa::path(post, path = "/api/chat", tag = "traffic", request_body = ChatBody, security(("bearer" = [])),
    responses((status = 201, body = ChatReply), (status = 200, body = ChatReply, description = "a replay"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn chat(
    State(state): State<AppState>,
    caller: Admitted<Operators>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<(StatusCode, HeaderMap, Json<ChatReply>), ApiError> {
    let session = bounded_text("session_id", &body.session_id, 200)?;
    let message = bounded_text("message", &body.message, 4000)?;
    let key = IdempotencyKey::parse(&body.idempotency_key)?;
    state.faults.chaos(Some(body.mission_id), "request")?;

    let client = state.pool.get().await?;
    let kind = EventKind::ChatExchanged;
    let row = client
        .one(&CHAT, &[&body.mission_id, &session, &message, &key.as_str(), &kind.name(), &caller.identity])
        .await?;
    if !row.try_get::<_, bool>("mission_found")? {
        return Err(ApiError::not_found("mission", body.mission_id));
    }
    let Some(message_id) = row.try_get::<_, Option<Uuid>>("message_id")? else {
        let replay = replayed_chat(&**client, &key, &body, &session, &message).await?;
        return Ok((StatusCode::OK, replay_headers(true), Json(replay)));
    };
    let (reply_id, reply): (Uuid, String) = (row.try_get("reply_id")?, row.try_get("reply")?);
    Ok((StatusCode::CREATED, replay_headers(false), Json(ChatReply { message_id, reply_id, reply })))
}

async fn replayed_chat(
    client: &impl tokio_postgres::GenericClient,
    key: &IdempotencyKey,
    body: &ChatBody,
    session: &str,
    message: &str,
) -> Result<ChatReply, ApiError> {
    let row = client
        .query_one(
            "SELECT u.id AS message_id, u.mission_id, u.session_id, u.content AS message, a.id AS reply_id,
                    a.content AS reply
               FROM chat_messages u JOIN chat_messages a ON a.reply_to = u.id
              WHERE u.idempotency_key = $1",
            &[&key.as_str()],
        )
        .await?;
    let same = row.try_get::<_, Uuid>("mission_id")? == body.mission_id
        && row.try_get::<_, String>("session_id")? == session
        && row.try_get::<_, String>("message")? == message;
    if !same {
        return Err(ApiError::Conflict("idempotency_key was already used for a different chat message".into()));
    }
    Ok(ChatReply {
        message_id: row.try_get("message_id")?,
        reply_id: row.try_get("reply_id")?,
        reply: row.try_get("reply")?,
    })
}

const TASK_COLUMNS: &str =
    "id, mission_id, contract_id, kind, title, payload, status, result, attempts, created_at, updated_at, completed_at";

impl FromRow for Task {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            mission_id: row.try_get("mission_id")?,
            contract_id: row.try_get("contract_id")?,
            kind: row.try_get("kind")?,
            title: row.try_get("title")?,
            payload: row.try_get("payload")?,
            status: row.try_get("status")?,
            result: row.try_get("result")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            completed_at: row.try_get("completed_at")?,
        })
    }
}

fn payload_object(payload: Value) -> Result<Value, FieldError> {
    match payload {
        Value::Null => Ok(json!({})),
        Value::Object(_) => storable_json("payload", &payload).map(|()| payload),
        _ => Err(FieldError::new("payload", "must be a JSON object")),
    }
}

/// Submits a task; the background runner completes it.
#[utoipa::path(post, path = "/api/tasks", tag = "traffic", request_body = NewTask, security(("bearer" = [])),
    responses((status = 202, body = Task), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn submit_task(
    State(state): State<AppState>,
    caller: Admitted<Operators>,
    ApiJson(body): ApiJson<NewTask>,
) -> Result<(StatusCode, HeaderMap, Json<Task>), ApiError> {
    let title = bounded_text("title", &body.title, 500)?;
    let payload = payload_object(body.payload)?;
    let key = IdempotencyKey::parse(&body.idempotency_key)?;
    state.faults.chaos(Some(body.mission_id), "request")?;

    let client = state.pool.get().await?;
    let kind = EventKind::TaskSubmitted;
    let inserted = client
        .opt(&SUBMIT_TASK, &[&body.mission_id, &title, &payload, &key.as_str(), &kind.name(), &caller.identity])
        .await
        .map_err(|e| match e.code() {
            Some(&SqlState::FOREIGN_KEY_VIOLATION) => ApiError::not_found("mission", body.mission_id),
            _ => e.into(),
        })?;
    let Some(row) = inserted else {
        let existing = client
            .query_one(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = $1"), &[&key.as_str()])
            .await?;
        let task = Task::from_row(&existing)?;
        if task.mission_id != body.mission_id || task.title != title || task.payload != payload {
            return Err(ApiError::Conflict("idempotency_key was already used for a different task".into()));
        }
        return Ok((StatusCode::ACCEPTED, replay_headers(true), Json(task)));
    };
    let task = Task::from_row(&row)?;
    Ok((StatusCode::ACCEPTED, replay_headers(false), Json(task)))
}

fn task_event(kind: EventKind, caller: &Caller, task: &Task) -> NewEvent {
    NewEvent {
        kind,
        actor: caller.identity.clone(),
        resource: format!("task/{}", task.id),
        mission_id: Some(task.mission_id),
        contract_id: task.contract_id,
        approval_id: None,
        payload: json!({ "task_id": task.id, "status": task.status, "title": task.title }),
        result: "ok",
    }
}

#[utoipa::path(get, path = "/api/tasks/{id}", tag = "traffic", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
pub async fn task(State(state): State<AppState>, _caller: Caller, PathId(id): PathId) -> Result<Json<Task>, ApiError> {
    let id = parse_id("task", &id)?;
    let row = state
        .pool
        .get()
        .await?
        .query_opt(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"), &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found("task", id))?;
    Ok(Json(Task::from_row(&row)?))
}

/// Changes a queued task: its title, its payload, or cancels it.
#[utoipa::path(patch, path = "/api/tasks/{id}", tag = "traffic", request_body = TaskChange, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn change_task(
    State(state): State<AppState>,
    caller: Admitted<Operators>,
    PathId(id): PathId,
    ApiJson(change): ApiJson<TaskChange>,
) -> Result<Json<Task>, ApiError> {
    let id = parse_id("task", &id)?;
    let title = change.title.as_deref().map(|t| bounded_text("title", t, 500)).transpose()?;
    let payload = change.payload.map(payload_object).transpose()?;
    if change.status.is_some_and(|status| status != TaskStatus::Cancelled) {
        return Err(FieldError::new("status", "only cancelled can be set").into());
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let status: TaskStatus = tx
        .opt("SELECT status FROM tasks WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found("task", id))?
        .try_get("status")?;
    if status != TaskStatus::Queued {
        return Err(ApiError::Conflict(format!("task {id} is {status}; only a queued task can change")));
    }
    let row = tx
        .one(
            &format!(
                "UPDATE tasks SET title = coalesce($2, title), payload = coalesce($3, payload),
                        status = coalesce($4, status), updated_at = now()
                  WHERE id = $1 RETURNING {TASK_COLUMNS}"
            ),
            &[&id, &title, &payload, &change.status],
        )
        .await?;
    let task = Task::from_row(&row)?;
    events::record(&tx, &[task_event(EventKind::TaskUpdated, &caller, &task)]).await?;
    tx.commit().await?;
    Ok(Json(task))
}
