//! A workload file as written: TOML, read with serde into these types, which
//! say nothing yet about whether the file makes sense (a variable that does
//! not exist, a weight of 0). `super::compile` turns them into a `Workload`
//! or an error naming the line and column. Every field that can be wrong
//! later keeps its place in the file (`Spanned`). The JSON Schema editors use
//! (`grace workload schema`) is derived from these types.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A workload: the traffic a load run sends, and where its writes must end up.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// What the workload is, for people reading the results.
    #[serde(default)]
    pub description: String,
    /// The target is a Grace backend: the run gets a mission of its own
    /// (`{{mission}}`), the operator token is checked before any load, and
    /// the proofs read the backend's database (the control plane's) unless
    /// `--service-database-url` names another. Otherwise the target is any
    /// HTTP service, and its proofs need `--service-database-url`.
    #[serde(default)]
    pub grace_backend: bool,
    /// The load it suggests; `grace load` flags override each field.
    #[serde(default)]
    pub load: LoadFile,
    /// Headers sent with every request (values are templates).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// CSV files whose rows the users take, a row per scenario iteration.
    #[serde(default)]
    pub feeders: Vec<FeederFile>,
    /// What the users do, each user one scenario, chosen by weight.
    pub scenarios: Vec<ScenarioFile>,
    /// Where each kind of acknowledged write must be stored, checked after the load.
    #[serde(default)]
    pub proofs: Vec<ProofFile>,
}

/// The suggested load shape.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadFile {
    /// Users across all workers.
    pub users: Option<u32>,
    /// How long the run lasts, e.g. "30s", "5m".
    pub run_time: Option<String>,
    /// k6-style stages, "DURATION:USERS" each, e.g. ["30s:50", "1m:50", "10s:0"].
    #[serde(default)]
    pub stages: Vec<String>,
    /// Open model: requests per second across all workers.
    pub rate: Option<f64>,
}

/// One kind of user: a flow of steps, run again and again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    /// How many users run it, relative to the other scenarios (at least 1).
    #[serde(default = "one")]
    #[schemars(with = "u32")]
    pub weight: Spanned<u32>,
    /// The steps, in order: requests, think times, and polls.
    pub steps: Vec<StepFile>,
}

fn one() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

/// One step. A `think` step waits; a step with `until` polls (repeats its
/// request until the check holds, at most `times`); any other step is one
/// request.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    /// A think time, e.g. "500ms": the step only waits.
    #[schemars(with = "Option<String>")]
    pub think: Option<Spanned<String>>,
    /// The name results are grouped by, after the method (`POST <name>`): a
    /// route template, never an id. Default: the path with each `{{x}}`
    /// written `{x}`, so requests are named `GET /api/tasks/{id}`.
    pub name: Option<String>,
    /// GET (default), POST, PUT, PATCH, DELETE or HEAD.
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    /// The path (a template), e.g. "/api/tasks/{{task_id}}".
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Request headers (values are templates).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// A JSON body: every string in it is a template.
    #[schemars(with = "Option<serde_json::Value>")]
    pub json: Option<Spanned<toml::Value>>,
    /// A form body (application/x-www-form-urlencoded); values are templates.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub form: Option<BTreeMap<String, Spanned<String>>>,
    /// Marks the request as a write that must end up where the named proof
    /// looks: it gets an idempotency key (`{{key}}`), is retried with that
    /// key on a 5xx, a 429 or no answer, and its outcome is recorded.
    #[schemars(with = "Option<String>")]
    pub write: Option<Spanned<String>>,
    /// The end of the write's idempotency key (a template); the key is the
    /// run's prefix and the proof's name (`<run>/<worker>/<proof>/`) and
    /// this. Default "u{{user}}/{{write}}".
    #[schemars(with = "Option<String>")]
    pub key: Option<Spanned<String>>,
    /// The statuses that pass; default any 2xx.
    pub status: Option<Vec<u16>>,
    /// Checks on the answer's JSON body.
    #[serde(default)]
    pub checks: Vec<CheckFile>,
    /// Values to keep for later steps of the same user: NAME = "/json/pointer"
    /// or NAME = "header:Header-Name".
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub capture: BTreeMap<String, Spanned<String>>,
    /// Poll: repeat the request until this check holds.
    pub until: Option<CheckFile>,
    /// Poll: at most this many requests (default 10).
    pub times: Option<u32>,
    /// Poll: the pause between them (default "100ms").
    #[schemars(with = "Option<String>")]
    pub every: Option<Spanned<String>>,
}

/// A check on a JSON answer: the value at `pointer` exists, equals a value,
/// is of a JSON type, or (as text) matches a regular expression.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// A JSON pointer (RFC 6901), e.g. "/status" or "/items/0/id".
    #[schemars(with = "String")]
    pub pointer: Spanned<String>,
    /// The value must exist (the default when nothing else is asked).
    pub exists: Option<bool>,
    /// The value must equal this.
    #[schemars(with = "Option<serde_json::Value>")]
    pub equals: Option<toml::Value>,
    /// The value, as text, must match this regular expression.
    #[schemars(with = "Option<String>")]
    pub matches: Option<Spanned<String>>,
    /// The value's JSON type: "string", "number", "boolean", "object",
    /// "array" or "null"; alternatives joined by |, e.g. "object|array".
    #[schemars(with = "Option<String>")]
    pub is: Option<Spanned<String>>,
}

/// A CSV file's rows, for `{{NAME.COLUMN}}` values.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeederFile {
    pub name: String,
    /// The CSV file (with a header row), relative to the workload file.
    #[schemars(with = "String")]
    pub file: Spanned<String>,
    /// "sequence" (default: each user its own rows in turn) or "random".
    #[serde(default)]
    pub order: FeederOrder,
    /// Never give one row to two users, across all workers; a user with no
    /// row left stops.
    #[serde(default)]
    pub unique: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeederOrder {
    #[default]
    Sequence,
    Random,
}

/// Where one kind of write must end up: a table and its key column, or a
/// query returning the stored keys (`$1` is the run's key prefix).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofFile {
    pub name: String,
    /// A table, e.g. "orders" or "shop.orders".
    #[schemars(with = "Option<String>")]
    pub table: Option<Spanned<String>>,
    /// The column holding the idempotency key (default "idempotency_key").
    #[schemars(with = "Option<String>")]
    pub key_column: Option<Spanned<String>>,
    /// Instead of a table: SQL returning one text column of stored keys of the
    /// run, `$1` being its key prefix (e.g. `... WHERE key LIKE $1 || '%'`).
    #[schemars(with = "Option<String>")]
    pub query: Option<Spanned<String>>,
}
