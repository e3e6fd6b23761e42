//! Templates: strings with `{{…}}` placeholders, parsed once when the
//! workload is loaded into parts, so a request only copies text and looks
//! values up — no parsing per request. A placeholder names a value the user
//! has at that moment (see [`Value`]); one that names nothing known is an
//! error at load time, never during the run.

use rand::Rng;
use serde_json::Value as Json;
use std::collections::HashMap;

/// A value a placeholder stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The run's id.
    Run,
    /// The worker's id.
    Worker,
    /// The user's number in the whole run (0-based).
    User,
    /// This user's scenario iteration, from 1.
    Iteration,
    /// This user's write count, from 1: what makes each write's key unique.
    Write,
    /// The write's idempotency key (in a write step).
    Key,
    /// A fresh UUID v4.
    Uuid,
    /// Now, RFC 3339 in UTC.
    Now,
    /// The mission the run is tagged with (the Grace backend's traffic).
    Mission,
    /// The bearer token the worker was given (`--token`, `GRACE_TOKEN`): a
    /// secret, sent only where a template puts it, never written into a result.
    Token,
    /// A random integer in `low..=high`.
    RandomInt(i64, i64),
    /// One of these, at random.
    RandomChoice(Vec<String>),
    /// An environment variable of the worker (a secret by reference: its
    /// value is never written into a result).
    Env(String),
    /// A value an earlier step of this user captured.
    Captured(String),
    /// A column of the row this user's iteration took from a feeder.
    Feeder { feeder: usize, column: usize },
}

/// What a template may refer to where it stands.
pub struct Scope<'a> {
    /// Captures made by earlier steps of the flow.
    pub captured: &'a [String],
    /// Feeders by name, with their columns.
    pub feeders: &'a [(String, Vec<String>)],
    /// Inside a write step (`{{key}}` exists).
    pub in_write: bool,
    /// The target is a Grace backend (`{{mission}}` exists).
    pub grace_backend: bool,
    /// Whether an environment variable is set, as far as this process can tell.
    pub env_is_set: &'a dyn Fn(&str) -> bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Value(Value),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a user has when a template is rendered.
pub struct Values<'a> {
    pub run: &'a str,
    pub worker: &'a str,
    pub mission: &'a str,
    pub token: &'a str,
    pub user: usize,
    pub iteration: u64,
    pub write: u64,
    pub key: Option<&'a str>,
    pub env: &'a HashMap<String, String>,
    pub captured: &'a HashMap<String, Json>,
    /// The row taken from each feeder this iteration.
    pub rows: &'a [Option<&'a [String]>],
}

impl Template {
    /// Parses `text`; the error says what is wrong (the caller says where).
    pub fn parse(text: &str, scope: &Scope<'_>) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| format!("{{{{ without }}}} in {text:?}"))?;
            parts.push(Part::Value(value(after[..close].trim(), scope)?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// A template of fixed text.
    pub fn text(text: &str) -> Self {
        Self { parts: vec![Part::Text(text.to_string())] }
    }

    /// Whether it has no placeholder.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The placeholders' values, in order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// The template with each placeholder written `{name}`: a route template
    /// that names a request without its ids.
    pub fn route(&self, source: &str) -> String {
        // From the source text, so a placeholder keeps the name it was given.
        let mut route = String::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            route.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").unwrap_or(after.len());
            let name = after[..close].trim();
            let name = name.split(['(', '.']).next_back().unwrap_or(name).trim_end_matches(')');
            route.push('{');
            route.push_str(name);
            route.push('}');
            rest = after.get(close + 2..).unwrap_or("");
        }
        route.push_str(rest);
        route
    }

    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Value(value) => write_value(&mut out, value, values),
            }
        }
        out
    }

    /// As a JSON value: a template that is one placeholder keeps its value's
    /// type (a number stays a number, a captured object an object); any
    /// other is a string.
    pub fn render_json(&self, values: &Values<'_>) -> Json {
        match self.parts.as_slice() {
            [Part::Value(value)] => match value {
                Value::User => Json::from(values.user),
                Value::Iteration => Json::from(values.iteration),
                Value::Write => Json::from(values.write),
                Value::RandomInt(low, high) => Json::from(rand::rng().random_range(*low..=*high)),
                Value::Captured(name) => values.captured.get(name).cloned().unwrap_or(Json::Null),
                _ => Json::String(self.render(values)),
            },
            _ => Json::String(self.render(values)),
        }
    }
}

fn write_value(out: &mut String, value: &Value, values: &Values<'_>) {
    use std::fmt::Write;
    match value {
        Value::Run => out.push_str(values.run),
        Value::Worker => out.push_str(values.worker),
        Value::Mission => out.push_str(values.mission),
        Value::Token => out.push_str(values.token),
        Value::User => {
            let _ = write!(out, "{}", values.user);
        }
        Value::Iteration => {
            let _ = write!(out, "{}", values.iteration);
        }
        Value::Write => {
            let _ = write!(out, "{}", values.write);
        }
        Value::Key => out.push_str(values.key.unwrap_or_default()),
        Value::Uuid => {
            let _ = write!(out, "{}", uuid::Uuid::new_v4());
        }
        Value::Now => out.push_str(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        Value::RandomInt(low, high) => {
            let _ = write!(out, "{}", rand::rng().random_range(*low..=*high));
        }
        Value::RandomChoice(choices) => out.push_str(&choices[rand::rng().random_range(0..choices.len())]),
        Value::Env(name) => out.push_str(values.env.get(name).map_or("", String::as_str)),
        Value::Captured(name) => match values.captured.get(name) {
            Some(Json::String(text)) => out.push_str(text),
            Some(other) => {
                let _ = write!(out, "{other}");
            }
            None => {}
        },
        Value::Feeder { feeder, column } => {
            if let Some(Some(row)) = values.rows.get(*feeder) {
                out.push_str(row.get(*column).map_or("", String::as_str));
            }
        }
    }
}

/// The value an expression between `{{` and `}}` names.
fn value(expression: &str, scope: &Scope<'_>) -> Result<Value, String> {
    if let Some(arguments) = call(expression, "random_int") {
        let numbers: Vec<i64> = arguments
            .iter()
            .map(|a| a.parse().map_err(|_| format!("random_int takes two integers, not {a:?}")))
            .collect::<Result<_, _>>()?;
        return match numbers.as_slice() {
            [low, high] if low <= high => Ok(Value::RandomInt(*low, *high)),
            [low, high] => Err(format!("random_int({low}, {high}): the low bound is above the high one")),
            _ => Err(format!("random_int takes two integers (low, high), not {}", arguments.len())),
        };
    }
    if let Some(arguments) = call(expression, "random_choice") {
        if arguments.is_empty() {
            return Err("random_choice needs at least one choice".into());
        }
        return Ok(Value::RandomChoice(arguments));
    }
    if let Some(name) = expression.strip_prefix("env.") {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{{{{env.{name}}}}}: not an environment variable's name"));
        }
        if !(scope.env_is_set)(name) {
            return Err(format!("environment variable {name} is not set (used as {{{{env.{name}}}}})"));
        }
        return Ok(Value::Env(name.to_string()));
    }
    if let Some((feeder, column)) = expression.split_once('.') {
        let (index, (_, columns)) = scope
            .feeders
            .iter()
            .enumerate()
            .find(|(_, (name, _))| name == feeder)
            .ok_or_else(|| format!("{{{{{expression}}}}}: no feeder named {feeder:?}"))?;
        let column_index = columns.iter().position(|c| c == column).ok_or_else(|| {
            format!("{{{{{expression}}}}}: feeder {feeder:?} has no column {column:?} (it has {columns:?})")
        })?;
        return Ok(Value::Feeder { feeder: index, column: column_index });
    }
    Ok(match expression {
        "run" => Value::Run,
        "worker" => Value::Worker,
        "user" => Value::User,
        "iteration" => Value::Iteration,
        "write" => Value::Write,
        "uuid" => Value::Uuid,
        "now" => Value::Now,
        "mission" if scope.grace_backend => Value::Mission,
        "mission" => {
            return Err(
                "{{mission}} is the run's mission on a Grace backend: set `grace_backend = true` at the top".into()
            )
        }
        "token" => Value::Token,
        "key" if scope.in_write => Value::Key,
        "key" => return Err("{{key}} exists only in a write step (one with `write = ...`)".into()),
        name if scope.captured.iter().any(|c| c == name) => Value::Captured(name.to_string()),
        name => {
            return Err(format!(
                "unknown variable {{{{{name}}}}}: not a built-in (run, worker, user, iteration, write, key, uuid, now, \
                 mission, token, random_int(a, b), random_choice(a, b, …), env.NAME, FEEDER.COLUMN) nor captured by an \
                 earlier step"
            ))
        }
    })
}

/// The arguments of `name(a, b, …)`, unquoted, when `expression` is that call.
fn call(expression: &str, name: &str) -> Option<Vec<String>> {
    let inner = expression.strip_prefix(name)?.trim_start().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|a| a.trim().trim_matches('"').to_string()).filter(|a| !a.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(captured: &'a [String], feeders: &'a [(String, Vec<String>)]) -> Scope<'a> {
        Scope { captured, feeders, in_write: true, grace_backend: true, env_is_set: &|name| name == "TOKEN" }
    }

    #[test]
    fn placeholders_are_parsed_once_and_rendered_with_the_user_s_values() {
        let captured = vec!["task_id".to_string()];
        let feeders = vec![("customers".to_string(), vec!["id".to_string(), "email".to_string()])];
        let template =
            Template::parse("/u/{{user}}/{{ task_id }}/{{customers.email}}?k={{key}}", &scope(&captured, &feeders))
                .unwrap();
        let env = HashMap::new();
        let captures = HashMap::from([("task_id".to_string(), Json::from("t-9"))]);
        let row = vec!["7".to_string(), "a@b.c".to_string()];
        let rows = [Some(row.as_slice())];
        let values = Values {
            run: "r",
            worker: "w",
            mission: "m",
            token: "t",
            user: 3,
            iteration: 1,
            write: 2,
            key: Some("r/w/u3/2"),
            env: &env,
            captured: &captures,
            rows: &rows,
        };
        assert_eq!(template.render(&values), "/u/3/t-9/a@b.c?k=r/w/u3/2");
        assert_eq!(template.route("/u/{{user}}/{{ task_id }}"), "/u/{user}/{task_id}");
        assert_eq!(
            Template::parse("{{user}}", &scope(&captured, &feeders)).unwrap().render_json(&values),
            Json::from(3)
        );
    }

    #[test]
    fn a_name_that_means_nothing_is_refused_saying_why() {
        let (captured, feeders) = (Vec::new(), vec![("c".to_string(), vec!["id".to_string()])]);
        let scope = scope(&captured, &feeders);
        let error = |text: &str| Template::parse(text, &scope).unwrap_err();
        assert!(error("{{task_id}}").starts_with("unknown variable {{task_id}}"));
        assert!(error("{{env.MISSING}}").contains("environment variable MISSING is not set"));
        assert!(error("{{c.name}}").contains("feeder \"c\" has no column \"name\""));
        assert!(error("{{nope.id}}").contains("no feeder named \"nope\""));
        assert!(error("{{random_int(5, 1)}}").contains("low bound is above"));
        assert!(error("{{user").contains("without }}"));
        assert!(Template::parse("{{env.TOKEN}} {{random_choice(a, \"b\")}}", &scope).is_ok());
    }
}
