//! The Trigger Mesh: publish/subscribe over the backend's events.
//!
//! Subscriptions match `*`, a prefix (`agentic.*`) or an exact name, optionally
//! for one mission. Each subscriber has a bounded queue: a publisher never
//! waits, and an event a full queue cannot take is dropped and counted (a stuck
//! subscriber must never block request handling).
//!
//! Events are durable because they are rows; the mesh carries them across
//! processes through Postgres: the sequencer NOTIFYs after chaining a batch
//! into the immutable log, and every replica's bridge (`run_bridge`) reads the
//! newly chained events and publishes them locally, in log order. So every
//! replica, and every SSE client of any replica, sees the same stream, and an
//! event is published only once it is committed and logged.

use crate::configuration::DatabaseUrl;
use crate::db::Listener;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

/// The NOTIFY channel the sequencer announces chained batches on.
pub const CHANNEL: &str = "grace_mesh";
/// Queue length per subscriber: a burst of this many events is absorbed.
pub const SUBSCRIBER_QUEUE: usize = 1024;
/// How many events the bridge reads per query while catching up.
const BRIDGE_BATCH: i64 = 1000;
/// The bridge also looks without a notification this often, in case one was
/// missed (a reconnect, a NOTIFY lost with its session).
const BRIDGE_POLL: Duration = Duration::from_secs(1);

/// An event as subscribers see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeshEvent {
    pub id: i64,
    pub log_seq: i64,
    pub event_type: String,
    pub mission_id: Option<Uuid>,
    pub contract_id: Option<Uuid>,
    pub approval_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// What a subscription matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    All,
    Prefix(String),
    Exact(String),
}

impl Pattern {
    /// `*`, `prefix.*` or an exact event name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name_ok = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        };
        match raw {
            "*" => Ok(Self::All),
            _ => match raw.strip_suffix(".*") {
                Some(prefix) if name_ok(prefix) => Ok(Self::Prefix(format!("{prefix}."))),
                None if name_ok(raw) => Ok(Self::Exact(raw.to_string())),
                _ => Err("must be *, a prefix such as agentic.*, or an event name such as chat.exchanged".into()),
            },
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            Self::Exact(name) => event_type == name,
        }
    }
}

struct Subscriber {
    pattern: Pattern,
    mission: Option<Uuid>,
    /// The caller's identity (role and token digest), for the per-token cap.
    holder: String,
    queue: mpsc::Sender<Arc<MeshEvent>>,
}

/// Live subscriptions one token may hold: each costs the backend work on
/// every event published, so one client cannot buy unbounded fan-out.
pub const MAX_SUBSCRIPTIONS_PER_TOKEN: usize = 32;
/// Live subscriptions in all.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionRefused {
    /// This token holds its share already (429).
    TokenAtCap,
    /// The backend holds all it takes (503).
    MeshAtCap,
}

#[derive(Default)]
pub struct TriggerMesh {
    /// A std mutex: held only to walk the list, never across an await.
    subscribers: Mutex<Vec<Subscriber>>,
    dropped: AtomicU64,
    refused: AtomicU64,
    started: AtomicBool,
    last_seq: AtomicU64,
}

impl std::fmt::Debug for TriggerMesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerMesh").field("dropped", &self.dropped).field("last_seq", &self.last_seq).finish()
    }
}

impl TriggerMesh {
    /// A subscription for `holder`, unless it or the mesh is at its cap
    /// (subscriptions whose stream has closed no longer count).
    pub fn subscribe(
        &self,
        holder: &str,
        pattern: Pattern,
        mission: Option<Uuid>,
    ) -> Result<mpsc::Receiver<Arc<MeshEvent>>, SubscriptionRefused> {
        let mut subscribers = self.subscribers.lock().expect("mesh lock");
        subscribers.retain(|s| !s.queue.is_closed());
        let refused = if subscribers.len() >= MAX_SUBSCRIPTIONS {
            Some(SubscriptionRefused::MeshAtCap)
        } else if subscribers.iter().filter(|s| s.holder == holder).count() >= MAX_SUBSCRIPTIONS_PER_TOKEN {
            Some(SubscriptionRefused::TokenAtCap)
        } else {
            None
        };
        if let Some(refused) = refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refused);
        }
        let (queue, receiver) = mpsc::channel(SUBSCRIBER_QUEUE);
        subscribers.push(Subscriber { pattern, mission, holder: holder.to_string(), queue });
        Ok(receiver)
    }

    /// Subscriptions refused at a cap so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Hands `event` to every matching subscriber without waiting. A full queue
    /// drops the event for that subscriber; a closed one is removed.
    pub fn publish(&self, event: Arc<MeshEvent>) {
        let mut subscribers = self.subscribers.lock().expect("mesh lock");
        subscribers.retain(|s| {
            if !s.pattern.matches(&event.event_type) || s.mission.is_some_and(|m| event.mission_id != Some(m)) {
                return !s.queue.is_closed();
            }
            match s.queue.try_send(Arc::clone(&event)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.last_seq.fetch_max(event.log_seq as u64, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// The highest log seq published so far.
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Relaxed) as i64
    }

    /// (live subscribers, events waiting in their queues).
    pub fn load(&self) -> (i64, i64) {
        let mut subscribers = self.subscribers.lock().expect("mesh lock");
        subscribers.retain(|s| !s.queue.is_closed());
        let queued = subscribers.iter().map(|s| (SUBSCRIBER_QUEUE - s.queue.capacity()) as i64).sum();
        (subscribers.len() as i64, queued)
    }
}

/// Keeps the mesh fed from Postgres until `shutdown`: LISTEN on a connection
/// of its own, read newly chained events after each notification (and every
/// second regardless), reconnect with backoff when the database goes away, and
/// resume after the last event published — nothing is skipped across outages.
pub async fn run_bridge(mesh: Arc<TriggerMesh>, url: DatabaseUrl, shutdown: CancellationToken) {
    crate::db::keep_running("Trigger Mesh", &shutdown, || bridge_session(&mesh, &url, &shutdown)).await;
}

/// One connection's worth of bridging. Where it resumes is the mesh's own
/// `last_seq`: the log position it has published up to.
async fn bridge_session(
    mesh: &TriggerMesh,
    url: &DatabaseUrl,
    shutdown: &CancellationToken,
) -> Result<(), tokio_postgres::Error> {
    let mut listener = Listener::start(url, CHANNEL).await?;
    if !mesh.is_started() {
        // First connection: publish what happens from now on, not the history.
        let now: i64 = listener
            .client
            .query_one("SELECT coalesce(max(log_seq), 0) AS last_seq FROM action_events", &[])
            .await?
            .try_get("last_seq")?;
        mesh.last_seq.fetch_max(now as u64, Ordering::Relaxed);
        mesh.started.store(true, Ordering::Relaxed);
        tracing::info!("Trigger Mesh started");
    }
    let statement = listener
        .client
        .prepare(
            "SELECT id, log_seq, event_type, mission_id, contract_id, approval_id, payload
               FROM action_events WHERE log_seq > $1 ORDER BY log_seq LIMIT $2",
        )
        .await?;
    loop {
        loop {
            let rows = listener.client.query(&statement, &[&mesh.last_seq(), &BRIDGE_BATCH]).await?;
            for row in &rows {
                let event = MeshEvent {
                    id: row.try_get("id")?,
                    log_seq: row.try_get("log_seq")?,
                    event_type: row.try_get("event_type")?,
                    mission_id: row.try_get("mission_id")?,
                    contract_id: row.try_get("contract_id")?,
                    approval_id: row.try_get("approval_id")?,
                    payload: row.try_get("payload")?,
                };
                mesh.publish(Arc::new(event));
            }
            if (rows.len() as i64) < BRIDGE_BATCH {
                break;
            }
        }
        listener.check().await?;
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = listener.wait(BRIDGE_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, mission: Option<Uuid>, seq: i64) -> Arc<MeshEvent> {
        Arc::new(MeshEvent {
            id: seq,
            log_seq: seq,
            event_type: event_type.into(),
            mission_id: mission,
            contract_id: None,
            approval_id: None,
            payload: serde_json::json!({}),
        })
    }

    #[test]
    fn patterns_match_all_prefix_and_exact() {
        assert!(Pattern::parse("*").unwrap().matches("chat.exchanged"));
        let agentic = Pattern::parse("agentic.*").unwrap();
        assert!(agentic.matches("agentic.contract_created"));
        assert!(!agentic.matches("agenticx.y") && !agentic.matches("chat.exchanged"));
        let exact = Pattern::parse("chat.exchanged").unwrap();
        assert!(exact.matches("chat.exchanged") && !exact.matches("chat.exchanged_twice"));
        for bad in ["", "Agentic.*", "a b", ".*", "*.*"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn subscribers_get_what_matches_and_a_full_queue_drops_instead_of_blocking() {
        let mesh = TriggerMesh::default();
        let mission = Uuid::new_v4();
        let mut agentic = mesh.subscribe("t", Pattern::parse("agentic.*").unwrap(), None).unwrap();
        let mut ours = mesh.subscribe("t", Pattern::All, Some(mission)).unwrap();
        let stuck = mesh.subscribe("t", Pattern::All, None).unwrap();

        mesh.publish(event("agentic.contract_created", Some(mission), 1));
        mesh.publish(event("chat.exchanged", None, 2));
        assert_eq!(agentic.recv().await.unwrap().log_seq, 1);
        assert!(agentic.try_recv().is_err(), "chat does not match agentic.*");
        assert_eq!(ours.recv().await.unwrap().log_seq, 1);
        assert!(ours.try_recv().is_err(), "another mission's event is filtered out");

        // `stuck` never reads: it holds 2 events, takes 1022 more, then every further event is
        // dropped for it alone, and publishing never waits.
        for seq in 3..(SUBSCRIBER_QUEUE as i64 + 11) {
            mesh.publish(event("task.submitted", None, seq));
        }
        assert_eq!(mesh.dropped(), 10);
        assert_eq!(mesh.load().0, 3);
        drop(stuck);
        mesh.publish(event("task.submitted", None, 99_999));
        assert_eq!(mesh.load().0, 2, "a closed subscription is removed");
    }

    #[test]
    fn subscriptions_are_capped_per_token_and_in_all_and_a_closed_one_frees_its_place() {
        let mesh = TriggerMesh::default();
        let mut held = Vec::new();
        for _ in 0..MAX_SUBSCRIPTIONS_PER_TOKEN {
            held.push(mesh.subscribe("greedy", Pattern::All, None).unwrap());
        }
        assert_eq!(mesh.subscribe("greedy", Pattern::All, None).unwrap_err(), SubscriptionRefused::TokenAtCap);
        held.pop();
        held.push(mesh.subscribe("greedy", Pattern::All, None).expect("a closed stream frees its place"));
        for n in 0..(MAX_SUBSCRIPTIONS - MAX_SUBSCRIPTIONS_PER_TOKEN) {
            held.push(mesh.subscribe(&format!("other-{}", n % 7), Pattern::All, None).unwrap());
        }
        assert_eq!(mesh.subscribe("newcomer", Pattern::All, None).unwrap_err(), SubscriptionRefused::MeshAtCap);
        assert_eq!(mesh.refused(), 2);
    }
}
