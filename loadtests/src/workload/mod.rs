//! Workloads as data: the traffic a load run sends, described in a TOML
//! file instead of Rust — scenarios by weight, each a flow of requests, think
//! times and polls; values from templates, captures and CSV feeders; checks
//! on the answers; writes marked so their outcomes are recorded and proven
//! stored afterwards (`proofs`). `compile` reads a file into a [`Workload`]
//! once, refusing anything that could only fail later (an unknown variable,
//! a capture used before it is made, a bad JSON pointer, a weight of 0) with
//! the file, line and column; `engine` runs it on goose.
//!
//! TOML rather than YAML: serde's TOML reader is maintained and reports where
//! each value sits (so every error names its line and column), and TOML has
//! no indentation to get wrong; the JSON Schema (`schema`) serves editors.

mod engine;
pub mod file;
mod template;

pub use engine::{environment, scenarios, Numbering};
pub use file::FeederOrder;
pub use template::{Scope, Template, Value};

use file::{CheckFile, StepFile, WorkloadFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// A workload and the files it reads, as a run carries it to its workers
/// (through the control plane: workers need no files of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSource {
    /// Where it was read from (for messages), e.g. `orders.toml` or `bundled:mission`.
    pub origin: String,
    pub text: String,
    /// The feeders' CSV files, by the path the workload gives.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// The workloads built into `grace`.
pub const BUNDLED: &[(&str, &str)] = &[
    ("mission", include_str!("../../../workloads/mission.toml")),
    ("health", include_str!("../../../workloads/health.toml")),
];

impl WorkloadSource {
    /// A bundled workload by name.
    pub fn bundled(name: &str) -> Option<Self> {
        BUNDLED.iter().find(|(n, _)| *n == name).map(|(name, text)| Self {
            origin: format!("bundled:{name}"),
            text: text.to_string(),
            files: BTreeMap::new(),
        })
    }

    /// Reads a workload file and the feeder files it names (relative to it).
    pub fn read(path: &std::path::Path) -> Result<Self, WorkloadError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| WorkloadError::unlocated(&origin, format!("cannot read it: {e}")))?;
        let parsed: WorkloadFile = toml::from_str(&text).map_err(|e| WorkloadError::toml(&origin, &text, &e))?;
        let mut files = BTreeMap::new();
        for feeder in &parsed.feeders {
            let relative = feeder.file.get_ref();
            let full = path.parent().unwrap_or(std::path::Path::new(".")).join(relative);
            let content = std::fs::read_to_string(&full).map_err(|e| {
                WorkloadError::at(&origin, &text, feeder.file.span(), format!("cannot read {}: {e}", full.display()))
            })?;
            files.insert(relative.clone(), content);
        }
        Ok(Self { origin, text, files })
    }
}

/// A workload, checked and compiled: what the engine runs.
#[derive(Debug, Clone)]
pub struct Workload {
    pub origin: String,
    pub description: String,
    /// The target is a Grace backend (see `file::WorkloadFile::grace_backend`).
    pub grace_backend: bool,
    pub load: SuggestedLoad,
    pub headers: Vec<(String, Template)>,
    pub feeders: Vec<Feeder>,
    pub scenarios: Vec<Flow>,
    pub proofs: Vec<ProofSpec>,
}

impl Workload {
    /// Every request name it can send (`METHOD label`), each once, sorted.
    pub fn request_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&str> = self
            .scenarios
            .iter()
            .flat_map(|flow| &flow.steps)
            .filter_map(|step| match step {
                Step::Request(request) | Step::Poll { request, .. } => Some(request.name.as_str()),
                Step::Think(_) => None,
            })
            .collect();
        names.into_iter().map(str::to_string).collect()
    }
}

/// The load a workload suggests; flags override each field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuggestedLoad {
    pub users: Option<u32>,
    pub run_time: Option<Duration>,
    pub stages: Vec<String>,
    pub rate: Option<f64>,
}

/// One scenario: its users run `steps` again and again.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub weight: usize,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Request(Request),
    Think(Duration),
    Poll { request: Request, until: Check, times: u32, every: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

#[derive(Debug, Clone)]
pub enum Body {
    Json(JsonTemplate),
    Form(Vec<(String, Template)>),
}

/// A JSON body whose strings are templates; what has none stays a value.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Constant(serde_json::Value),
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Debug, Clone)]
pub struct Request {
    /// The name results are grouped by: `METHOD label` (`POST /api/chat`).
    pub name: String,
    pub method: Method,
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Body>,
    /// A write: the proof it must be stored for, and its key's template.
    pub write: Option<Write>,
    /// Statuses that pass; empty: any 2xx.
    pub status: Vec<u16>,
    pub checks: Vec<Check>,
    pub captures: Vec<Capture>,
}

impl Request {
    /// Whether the answer's body must be read as JSON.
    pub fn needs_json(&self) -> bool {
        !self.checks.is_empty() || self.captures.iter().any(|c| matches!(c.from, CaptureFrom::Pointer(_)))
    }
}

#[derive(Debug, Clone)]
pub struct Write {
    pub proof: String,
    pub key: Template,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub pointer: String,
    pub test: Test,
}

#[derive(Debug, Clone)]
pub enum Test {
    Exists,
    Equals(serde_json::Value),
    Matches(regex::Regex),
    /// One of these JSON types.
    Is(Vec<&'static str>),
}

/// The JSON type of `value`, as a check names it.
fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

impl Check {
    /// `Ok` when it holds, else what was found instead.
    pub fn judge(&self, body: &serde_json::Value) -> Result<(), String> {
        let found = body.pointer(&self.pointer);
        let holds = match (&self.test, found) {
            (_, None) => false,
            (Test::Exists, Some(_)) => true,
            (Test::Equals(expected), Some(value)) => value == expected,
            (Test::Matches(pattern), Some(serde_json::Value::String(text))) => pattern.is_match(text),
            (Test::Matches(pattern), Some(value)) => pattern.is_match(&value.to_string()),
            (Test::Is(types), Some(value)) => types.contains(&json_type(value)),
        };
        if holds {
            return Ok(());
        }
        let wanted = match &self.test {
            Test::Exists => "to exist".to_string(),
            Test::Equals(expected) => format!("to equal {expected}"),
            Test::Matches(pattern) => format!("to match /{pattern}/"),
            Test::Is(types) => format!("to be {}", types.join(" or ")),
        };
        Err(match found {
            None => format!("{} {wanted}, but it is absent", self.pointer),
            Some(value) => format!("{} {wanted}, but it is {value}", self.pointer),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub from: CaptureFrom,
}

#[derive(Debug, Clone)]
pub enum CaptureFrom {
    Pointer(String),
    Header(String),
}

/// A CSV file's rows.
#[derive(Debug, Clone)]
pub struct Feeder {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub order: FeederOrder,
    pub unique: bool,
}

/// Where one kind of write must be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofSpec {
    pub name: String,
    pub stored: StoredKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredKeys {
    /// The keys in `column` of `table` (both checked to be plain identifiers).
    Table { table: String, column: String },
    /// A query returning the stored keys, `$1` being the run's key prefix.
    Query(String),
}

/// Why a workload cannot be used: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadError {
    pub origin: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for WorkloadError {}

impl WorkloadError {
    fn unlocated(origin: &str, message: String) -> Self {
        Self { origin: origin.to_string(), at: None, message }
    }

    fn at(origin: &str, text: &str, span: Range<usize>, message: String) -> Self {
        Self { origin: origin.to_string(), at: Some(line_and_column(text, span.start)), message }
    }

    fn toml(origin: &str, text: &str, error: &toml::de::Error) -> Self {
        let message = error.message().to_string();
        match error.span() {
            Some(span) => Self::at(origin, text, span, message),
            None => Self::unlocated(origin, message),
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Compiles `source`. `env_is_set` says whether an environment variable a
/// template names is set (on a worker, where values are read; on the
/// coordinator, so a missing one is named before any load).
pub fn compile(source: &WorkloadSource, env_is_set: &dyn Fn(&str) -> bool) -> Result<Workload, WorkloadError> {
    let (origin, text) = (source.origin.as_str(), source.text.as_str());
    let file: WorkloadFile = toml::from_str(text).map_err(|e| WorkloadError::toml(origin, text, &e))?;
    let fail = |span: Range<usize>, message: String| WorkloadError::at(origin, text, span, message);
    let whole = || WorkloadError::unlocated(origin, String::new());

    let mut feeders = Vec::new();
    for feeder in &file.feeders {
        if feeders.iter().any(|f: &Feeder| f.name == feeder.name) {
            return Err(fail(feeder.file.span(), format!("two feeders are named {:?}", feeder.name)));
        }
        let content = source.files.get(feeder.file.get_ref()).ok_or_else(|| {
            fail(feeder.file.span(), format!("the file {:?} did not come with the workload", feeder.file.get_ref()))
        })?;
        let (columns, rows) = read_csv(content).map_err(|e| fail(feeder.file.span(), e))?;
        feeders.push(Feeder { name: feeder.name.clone(), columns, rows, order: feeder.order, unique: feeder.unique });
    }
    let named_feeders: Vec<(String, Vec<String>)> =
        feeders.iter().map(|f| (f.name.clone(), f.columns.clone())).collect();

    let mut proofs = Vec::new();
    for proof in &file.proofs {
        // The name is part of each key (`<run>/<worker>/<proof>/…`), which is how its writes are told apart.
        if proof.name.is_empty() || !proof.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(WorkloadError {
                message: format!("proof name {:?}: letters, digits, `_` and `-` only", proof.name),
                ..whole()
            });
        }
        if proofs.iter().any(|p: &ProofSpec| p.name == proof.name) {
            return Err(WorkloadError { message: format!("two proofs are named {:?}", proof.name), ..whole() });
        }
        let stored = match (&proof.table, &proof.query) {
            (Some(table), None) => {
                let column = proof.key_column.as_ref().map_or("idempotency_key", |c| c.get_ref().as_str());
                for (name, span) in [(table.get_ref().as_str(), table.span()), (column, key_span(proof))] {
                    if !is_identifier(name) {
                        return Err(fail(span, format!("{name:?} is not a plain table or column name")));
                    }
                }
                StoredKeys::Table { table: table.get_ref().clone(), column: column.to_string() }
            }
            (None, Some(query)) if query.get_ref().contains("$1") => StoredKeys::Query(query.get_ref().clone()),
            (None, Some(query)) => {
                return Err(fail(query.span(), "the query must select the run's keys by its prefix, $1".into()))
            }
            _ => {
                return Err(WorkloadError {
                    message: format!("proof {:?} needs either `table` (and `key_column`) or `query`", proof.name),
                    ..whole()
                })
            }
        };
        proofs.push(ProofSpec { name: proof.name.clone(), stored });
    }

    let grace_backend = file.grace_backend;
    let scope = Scope { captured: &[], feeders: &named_feeders, in_write: false, grace_backend, env_is_set };
    let headers = compile_headers(&file.headers, &scope).map_err(|(span, message)| fail(span, message))?;
    let context = FileContext { feeders: &named_feeders, proofs: &proofs, grace_backend, env_is_set };

    if file.scenarios.is_empty() {
        return Err(WorkloadError { message: "a workload needs at least one [[scenarios]]".into(), ..whole() });
    }
    let mut scenarios = Vec::new();
    for scenario in &file.scenarios {
        if *scenario.weight.get_ref() == 0 {
            return Err(fail(
                scenario.weight.span(),
                format!("scenario {:?} has weight 0: give it 1 or more", scenario.name),
            ));
        }
        if scenario.steps.is_empty() {
            return Err(WorkloadError { message: format!("scenario {:?} has no steps", scenario.name), ..whole() });
        }
        let mut captured: Vec<String> = Vec::new();
        let mut steps = Vec::new();
        for step in &scenario.steps {
            let compiled = compile_step(step, &mut captured, &context).map_err(|(span, message)| match span {
                Some(span) => fail(span, message),
                None => WorkloadError { message: format!("scenario {:?}: {message}", scenario.name), ..whole() },
            })?;
            steps.push(compiled);
        }
        scenarios.push(Flow { name: scenario.name.clone(), weight: *scenario.weight.get_ref() as usize, steps });
    }

    let load = &file.load;
    let run_time = match &load.run_time {
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|e| WorkloadError { message: format!("load.run_time {text:?}: {e}"), ..whole() })?,
        ),
        None => None,
    };
    if load.rate.is_some_and(|rate| !(rate > 0.0 && rate.is_finite())) {
        return Err(WorkloadError { message: "load.rate must be a positive number of requests/s".into(), ..whole() });
    }
    Ok(Workload {
        origin: origin.to_string(),
        description: file.description.clone(),
        grace_backend,
        load: SuggestedLoad { users: load.users, run_time, stages: load.stages.clone(), rate: load.rate },
        headers,
        feeders,
        scenarios,
        proofs,
    })
}

fn key_span(proof: &file::ProofFile) -> Range<usize> {
    proof.key_column.as_ref().or(proof.table.as_ref()).map_or(0..0, |s| s.span())
}

/// A table or column name that needs no quoting: letters, digits, `_`, one `.`.
fn is_identifier(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// What is wrong, and where in the file when it has a place.
type Located = (Option<Range<usize>>, String);
/// Headers by name, their values templates.
type Headers = Vec<(String, Template)>;

fn compile_headers(
    headers: &BTreeMap<String, Spanned<String>>,
    scope: &Scope<'_>,
) -> Result<Headers, (Range<usize>, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err((value.span(), format!("{name:?} is not a header name")));
            }
            let template = Template::parse(value.get_ref(), scope).map_err(|e| (value.span(), e))?;
            Ok((name.clone(), template))
        })
        .collect()
}

/// What every step of a file may refer to.
#[derive(Clone, Copy)]
struct FileContext<'a> {
    feeders: &'a [(String, Vec<String>)],
    proofs: &'a [ProofSpec],
    grace_backend: bool,
    env_is_set: &'a dyn Fn(&str) -> bool,
}

fn compile_step(step: &StepFile, captured: &mut Vec<String>, context: &FileContext) -> Result<Step, Located> {
    if let Some(think) = &step.think {
        let others = step.method.is_some() || step.path.is_some() || step.json.is_some() || step.until.is_some();
        if others {
            return Err((Some(think.span()), "a think step only waits: give it no request".into()));
        }
        let pause = humantime::parse_duration(think.get_ref())
            .map_err(|e| (Some(think.span()), format!("think {:?}: {e}", think.get_ref())))?;
        return Ok(Step::Think(pause));
    }
    let request = compile_request(step, captured, context)?;
    match &step.until {
        None => {
            if step.times.is_some() || step.every.is_some() {
                return Err((
                    None,
                    format!("{}: `times` and `every` belong to a poll (a step with `until`)", request.name),
                ));
            }
            Ok(Step::Request(request))
        }
        Some(until) => {
            if request.write.is_some() {
                return Err((None, format!("{}: a poll repeats a read; it cannot be a write", request.name)));
            }
            let until = compile_check(until)?;
            let times = step.times.unwrap_or(10);
            if times == 0 {
                return Err((None, format!("{}: a poll of 0 times", request.name)));
            }
            let every = match &step.every {
                Some(every) => humantime::parse_duration(every.get_ref())
                    .map_err(|e| (Some(every.span()), format!("every {:?}: {e}", every.get_ref())))?,
                None => Duration::from_millis(100),
            };
            Ok(Step::Poll { request, until, times, every })
        }
    }
}

fn compile_request(step: &StepFile, captured: &mut Vec<String>, context: &FileContext) -> Result<Request, Located> {
    let FileContext { feeders, proofs, grace_backend, env_is_set } = *context;
    let path = step.path.as_ref().ok_or((None, "a step needs a `path` (or `think`)".to_string()))?;
    if !path.get_ref().starts_with('/') {
        return Err((Some(path.span()), format!("the path {:?} must start with /", path.get_ref())));
    }
    let method = match &step.method {
        None => Method::Get,
        Some(method) => match method.get_ref().to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            other => return Err((Some(method.span()), format!("{other:?} is not a method Grace sends"))),
        },
    };
    let write = match &step.write {
        Some(proof) if !proofs.iter().any(|p| &p.name == proof.get_ref()) => {
            return Err((
                Some(proof.span()),
                format!("no proof named {:?} (add a [[proofs]] with that name)", proof.get_ref()),
            ))
        }
        Some(proof) => Some(proof.get_ref().clone()),
        None => None,
    };
    if write.is_none() && step.key.is_some() {
        return Err((step.key.as_ref().map(Spanned::span), "`key` belongs to a write step".into()));
    }
    let scope = Scope { captured, feeders, in_write: write.is_some(), grace_backend, env_is_set };
    let template = |text: &Spanned<String>| Template::parse(text.get_ref(), &scope).map_err(|e| (Some(text.span()), e));
    let path_template = template(path)?;
    // Every name is `METHOD label`, as goose shows requests: the label is the
    // step's `name` (its method prefix, if written, not doubled) or the route.
    let method_prefix = format!("{} ", method_name(method));
    let name = match &step.name {
        Some(name) if name.starts_with(&method_prefix) => name.clone(),
        Some(name) => format!("{method_prefix}{name}"),
        None => {
            let route = path_template.route(path.get_ref());
            format!("{method_prefix}{}", route.split('?').next().unwrap_or(&route))
        }
    };
    let headers = compile_headers(&step.headers, &scope).map_err(|(span, e)| (Some(span), e))?;
    let body = match (&step.json, &step.form) {
        (Some(_), Some(_)) => return Err((None, format!("{name}: a body is `json` or `form`, not both"))),
        (Some(json), None) => {
            let value = toml_to_json(json.get_ref());
            let compiled = json_template(&value, &scope).map_err(|e| (Some(json.span()), e))?;
            Some(Body::Json(compiled))
        }
        (None, Some(form)) => {
            Some(Body::Form(form.iter().map(|(k, v)| Ok((k.clone(), template(v)?))).collect::<Result<_, Located>>()?))
        }
        (None, None) => None,
    };
    let key = match &step.key {
        Some(key) => template(key)?,
        None => Template::parse("u{{user}}/{{write}}", &scope).map_err(|e| (None, e))?,
    };
    let mut checks = Vec::new();
    for check in &step.checks {
        checks.push(compile_check(check)?);
    }
    let mut captures = Vec::new();
    for (capture, from) in &step.capture {
        if !capture.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || capture.is_empty() {
            return Err((Some(from.span()), format!("{capture:?}: a capture's name is letters, digits and _")));
        }
        let from = match from.get_ref().strip_prefix("header:") {
            Some(header) => CaptureFrom::Header(header.trim().to_string()),
            None => CaptureFrom::Pointer(pointer(from)?),
        };
        captures.push(Capture { name: capture.clone(), from });
    }
    // Captures are there for the steps after this one.
    for capture in &captures {
        if !captured.contains(&capture.name) {
            captured.push(capture.name.clone());
        }
    }
    Ok(Request {
        name,
        method,
        path: path_template,
        headers,
        body,
        write: write.map(|proof| Write { proof, key }),
        status: step.status.clone().unwrap_or_default(),
        checks,
        captures,
    })
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// A JSON pointer, checked: empty (the whole document) or starting with `/`.
fn pointer(text: &Spanned<String>) -> Result<String, Located> {
    let pointer = text.get_ref();
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err((Some(text.span()), format!("{pointer:?} is not a JSON pointer (one starts with /, e.g. /id)")));
    }
    Ok(pointer.clone())
}

fn compile_check(check: &CheckFile) -> Result<Check, Located> {
    let pointer = pointer(&check.pointer)?;
    let asked = [check.exists.is_some(), check.equals.is_some(), check.matches.is_some(), check.is.is_some()]
        .into_iter()
        .filter(|asked| *asked)
        .count();
    if asked > 1 {
        return Err((Some(check.pointer.span()), "a check asks one thing: exists, equals, is or matches".into()));
    }
    const TYPES: [&str; 6] = ["string", "number", "boolean", "object", "array", "null"];
    let test = match (&check.equals, &check.matches, &check.is) {
        (Some(value), _, _) => Test::Equals(toml_to_json(value)),
        (_, Some(pattern), _) => Test::Matches(
            regex::Regex::new(pattern.get_ref())
                .map_err(|e| (Some(pattern.span()), format!("not a regular expression: {e}")))?,
        ),
        (_, _, Some(types)) => Test::Is(
            types
                .get_ref()
                .split('|')
                .map(|t| {
                    TYPES.iter().copied().find(|known| *known == t.trim()).ok_or_else(|| {
                        (Some(types.span()), format!("{:?} is not a JSON type (one of {})", t.trim(), TYPES.join(", ")))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        _ if check.exists == Some(false) => {
            return Err((Some(check.pointer.span()), "`exists = false` is not a check; leave it out".into()))
        }
        _ => Test::Exists,
    };
    Ok(Check { pointer, test })
}

fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(items) => serde_json::Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => {
            serde_json::Value::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect())
        }
    }
}

fn json_template(value: &serde_json::Value, scope: &Scope<'_>) -> Result<JsonTemplate, String> {
    Ok(match value {
        serde_json::Value::String(text) => {
            let template = Template::parse(text, scope)?;
            if template.is_constant() {
                JsonTemplate::Constant(value.clone())
            } else {
                JsonTemplate::Text(template)
            }
        }
        serde_json::Value::Array(items) => {
            let items: Vec<JsonTemplate> = items.iter().map(|v| json_template(v, scope)).collect::<Result<_, _>>()?;
            if items.iter().all(|i| matches!(i, JsonTemplate::Constant(_))) {
                JsonTemplate::Constant(value.clone())
            } else {
                JsonTemplate::Array(items)
            }
        }
        serde_json::Value::Object(fields) => {
            let fields: Vec<(String, JsonTemplate)> =
                fields.iter().map(|(k, v)| Ok((k.clone(), json_template(v, scope)?))).collect::<Result<_, String>>()?;
            if fields.iter().all(|(_, v)| matches!(v, JsonTemplate::Constant(_))) {
                JsonTemplate::Constant(value.clone())
            } else {
                JsonTemplate::Object(fields)
            }
        }
        other => JsonTemplate::Constant(other.clone()),
    })
}

fn read_csv(content: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut reader = csv::Reader::from_reader(content.as_bytes());
    let columns: Vec<String> =
        reader.headers().map_err(|e| format!("not CSV: {e}"))?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("not CSV: {e}"))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    if rows.is_empty() {
        return Err("the CSV file has no rows".into());
    }
    Ok((columns, rows))
}

/// The JSON Schema of the workload file, for editors.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(WorkloadFile)).expect("schemas serialize")
}

/// A commented workload to start from (`grace workload init`).
pub const EXAMPLE: &str = include_str!("../../../workloads/example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(text: &str) -> Result<Workload, WorkloadError> {
        let source = WorkloadSource { origin: "w.toml".into(), text: text.into(), files: BTreeMap::new() };
        compile(&source, &|name| name == "SHOP_TOKEN")
    }

    #[test]
    fn the_bundled_workloads_and_the_example_compile() {
        for (name, _) in BUNDLED {
            compile(&WorkloadSource::bundled(name).unwrap(), &|_| true).unwrap();
        }
        let example = WorkloadSource { origin: "example".into(), text: EXAMPLE.into(), files: BTreeMap::new() };
        compile(&example, &|_| true).unwrap();
    }

    #[test]
    fn each_mistake_is_named_with_its_line_and_column() {
        let error = |text: &str| compiled(text).unwrap_err().to_string();
        let step = |extra: &str| format!("[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\npath = \"/a\"\n{extra}\n");
        assert_eq!(error(&step("json = { id = \"{{nope}}\" }")).split(": unknown").next().unwrap(), "w.toml:5:8");
        assert!(
            error(&step("path2 = 1")).starts_with("w.toml:5:1: unknown field `path2`"),
            "{}",
            error(&step("path2 = 1"))
        );
        assert!(error("[[scenarios]]\nname = \"s\"\nweight = 0\nsteps = [{ path = \"/\" }]")
            .starts_with("w.toml:3:10: scenario \"s\" has weight 0"));
        // A capture is there for the steps after it, not before.
        let early = "[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\npath = \"/t/{{id}}\"\n[[scenarios.steps]]\npath = \"/t\"\ncapture = { id = \"/id\" }\n";
        assert!(error(early).starts_with("w.toml:4:8: unknown variable {{id}}"), "{}", error(early));
        let late = "[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\npath = \"/t\"\ncapture = { id = \"/id\" }\n[[scenarios.steps]]\npath = \"/t/{{id}}\"\n";
        assert_eq!(compiled(late).unwrap().scenarios[0].steps.len(), 2);
        assert!(error(&step("checks = [{ pointer = \"id\" }]")).contains("is not a JSON pointer"));
        assert!(error(&step("headers = { Authorization = \"Bearer {{env.NOPE}}\" }"))
            .contains("environment variable NOPE is not set"));
        assert!(error(&step("write = \"orders\"")).contains("no proof named \"orders\""));
        assert!(error(&step("checks = [{ pointer = \"/a\", matches = \"(\" }]")).contains("not a regular expression"));
        // The run's mission exists only on a Grace backend.
        let mission = step("json = { m = \"{{mission}}\" }");
        assert!(error(&mission).contains("set `grace_backend = true`"), "{}", error(&mission));
        assert!(compiled(&format!("grace_backend = true\n{mission}")).is_ok());
        // A proof's name is part of each key: no `/` in it.
        let slash = format!("[[proofs]]\nname = \"a/b\"\ntable = \"t\"\n{}", step(""));
        assert!(error(&slash).contains("proof name \"a/b\": letters, digits"), "{}", error(&slash));
    }

    #[test]
    fn a_request_is_named_by_its_method_and_route_unless_named() {
        let workload = compiled(
            "[[proofs]]\nname = \"orders\"\ntable = \"orders\"\n[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\n\
             method = \"post\"\npath = \"/orders?x=1\"\nwrite = \"orders\"\njson = { key = \"{{key}}\" }\n\
             capture = { order = \"/id\" }\n[[scenarios.steps]]\npath = \"/orders/{{order}}\"\n\
             [[scenarios.steps]]\nname = \"poll\"\npath = \"/orders/{{order}}\"\nuntil = { pointer = \"/state\", equals = \"paid\" }\n",
        )
        .unwrap();
        let names: Vec<String> = workload.scenarios[0]
            .steps
            .iter()
            .map(|s| match s {
                Step::Request(r) | Step::Poll { request: r, .. } => r.name.clone(),
                Step::Think(_) => "think".into(),
            })
            .collect();
        assert_eq!(names, ["POST /orders", "GET /orders/{order}", "GET poll"]);
    }
}
