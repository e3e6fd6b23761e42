//! Every SQL statement in Grace's source, prepared against the migrated
//! schema: the tokio-postgres counterpart of `sqlx::query!`'s compile-time
//! check. A column renamed or dropped in a migration then fails here, naming
//! the statement's file and line, rather than at run time in whatever path
//! happens to run it.
//!
//! The statements are the string literals of `src/` and `loadtests/src/` that
//! begin with SELECT, INSERT, UPDATE, DELETE, WITH or COPY, read as Rust tokens
//! (so a literal inside a macro counts too). In a `format!` string a `{NAME}`
//! is replaced by the file's `const NAME: &str`. The backend's statements
//! assembled from parts (its hot writes) are prepared as it assembles them
//! (`grace::backend::assembled_statements`). One with a placeholder left is
//! assembled at run time from what it is given (a table a workload names, a
//! range of the log) and is counted, not prepared.

use crate::helpers::TestDatabase;
use grace::backend::routes::paging::Filters;
use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokio_postgres::Client;

/// A statement as the source spells it.
struct Statement {
    /// `file:line`.
    at: String,
    sql: String,
}

/// The statements of the crate, and how many are assembled at run time.
fn statements() -> (Vec<Statement>, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "loadtests/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let (mut statements, mut assembled) = (Vec::new(), 0);
    for file in files {
        let source = std::fs::read_to_string(&file).expect("a source file reads");
        let tokens = TokenStream::from_str(&source).expect("a source file lexes");
        let mut literals = Vec::new();
        string_literals(tokens.clone(), &mut literals);
        let constants = str_constants(tokens);
        let name = file.strip_prefix(root).expect("under the crate").display().to_string();
        for literal in literals {
            // A constant is a part, checked in the statements it is put into.
            if !is_statement(&literal.text) || constants.values().any(|c| *c == literal.text) {
                continue;
            }
            let at = format!("{name}:{}", literal.line);
            let text = match literal.formatted {
                true => expand(&literal.text, &constants),
                false => Some(literal.text),
            };
            match text.map(fill_templates) {
                Some(sql) if !has_placeholder(&sql) => statements.push(Statement { at, sql }),
                _ => assembled += 1,
            }
        }
    }
    // What the backend assembles from parts at first use, as it assembles it.
    for (name, sql) in grace::backend::assembled_statements() {
        statements.push(Statement { at: name.to_string(), sql: sql.to_string() });
    }
    (statements, assembled)
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder reads") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
    into.sort();
}

/// A string literal of the source.
struct Literal {
    line: usize,
    text: String,
    /// The format string of a `format!`: `{…}` is a placeholder there.
    formatted: bool,
}

/// Every string literal in `tokens` (macro bodies included), but for doc
/// comments, unit tests (`mod tests { … }`, whose SQL is made up) and the
/// arguments of a function that takes a fragment of SQL.
fn string_literals(tokens: TokenStream, into: &mut Vec<Literal>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let ident = |at: usize, word: &str| matches!(tokens.get(at), Some(TokenTree::Ident(id)) if id == word);
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => {
                let doc = group.delimiter() == Delimiter::Bracket
                    && matches!(group.stream().into_iter().next(), Some(TokenTree::Ident(id)) if id == "doc");
                let unit_tests = i >= 2 && ident(i - 2, "mod") && ident(i - 1, "tests");
                let fragment = i >= 1 && FRAGMENT_TAKERS.iter().any(|f| ident(i - 1, f));
                if doc || unit_tests || fragment {
                    continue;
                }
                let format = i >= 2
                    && ident(i - 2, "format")
                    && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '!');
                let first = into.len();
                string_literals(group.stream(), into);
                if let (true, Some(literal)) = (format, into.get_mut(first)) {
                    literal.formatted = true;
                }
            }
            TokenTree::Literal(literal) => {
                if let Ok(text) = syn::parse_str::<syn::LitStr>(&literal.to_string()) {
                    into.push(Literal { line: literal.span().start().line, text: text.value(), formatted: false });
                }
            }
            _ => {}
        }
    }
}

/// Functions given a fragment of SQL to join to a statement of their own:
/// `counters::adding_to` takes the rows a counter update adds, read from the
/// `input` CTE of the statement it becomes part of.
const FRAGMENT_TAKERS: &[&str] = &["adding_to"];

/// The file's `const NAME: &str = "…";` (at any depth), by name.
fn str_constants(tokens: TokenStream) -> HashMap<String, String> {
    let mut constants = HashMap::new();
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        if let TokenTree::Group(group) = token {
            if group.delimiter() != Delimiter::None {
                constants.extend(str_constants(group.stream()));
            }
        }
        let is = |at: usize, word: &str| matches!(tokens.get(at), Some(TokenTree::Ident(id)) if id == word);
        if !is(i, "const") {
            continue;
        }
        let Some(TokenTree::Ident(name)) = tokens.get(i + 1) else { continue };
        let Some(equals) = tokens[i..].iter().position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == '='))
        else {
            continue;
        };
        let typed_str = tokens[i..i + equals].iter().any(|t| matches!(t, TokenTree::Ident(id) if id == "str"));
        if let (true, Some(TokenTree::Literal(literal))) = (typed_str, tokens.get(i + equals + 1)) {
            if let Ok(text) = syn::parse_str::<syn::LitStr>(&literal.to_string()) {
                constants.insert(name.to_string(), text.value());
            }
        }
    }
    constants
}

/// SQL as the crate writes it: keywords in capitals, so prose (`with
/// several backends`) and request names (`DELETE /api/chat`) are not taken.
fn is_statement(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        ["DELETE", second] => *second == "FROM",
        [first, _] => ["SELECT", "INSERT", "UPDATE", "WITH", "COPY"].contains(first),
        _ => false,
    }
}

/// `sql` as the backend fills a list's template (`{where}`, `{limit}`) when
/// a request sets no filter; any other statement as it is.
fn fill_templates(sql: String) -> String {
    Filters::default().statement(&sql, &100).0
}

/// A `{name}` or `{}` left: filled at run time from what the code is given.
fn has_placeholder(sql: &str) -> bool {
    sql.match_indices('{').any(|(at, _)| {
        let rest = &sql[at + 1..];
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        rest[name_len..].starts_with('}')
    })
}

/// The format string `text` with each `{NAME}` that names a constant
/// replaced by its value (a constant may name another) and `{{`, `}}`
/// unescaped; `None` when a placeholder is left for an argument.
fn expand(text: &str, constants: &HashMap<String, String>) -> Option<String> {
    let mut sql = text.to_string();
    loop {
        let before = sql.clone();
        for (name, value) in constants {
            sql = sql.replace(&format!("{{{name}}}"), value);
        }
        if sql == before {
            break;
        }
    }
    let unescaped = sql.replace("{{", "").replace("}}", "");
    (!has_placeholder(&unescaped)).then(|| sql.replace("{{", "{").replace("}}", "}"))
}

/// The statements PostgreSQL would not prepare, each with its error. A
/// statement reading a temporary table another statement of the same session
/// makes first is prepared after making it (`pg_temp.stored_keys`, the
/// C7 check's copy of a service's keys).
async fn unprepared(client: &Client, statements: &[Statement]) -> Vec<String> {
    client
        .batch_execute("CREATE TEMPORARY TABLE stored_keys (key text)")
        .await
        .expect("the C7 check's temporary table is made");
    let mut failed = Vec::new();
    for statement in statements {
        if let Err(e) = client.prepare(&statement.sql).await {
            let cause = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
            failed.push(format!("{}: {cause}\n    {}", statement.at, one_line(&statement.sql)));
        }
    }
    failed
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn every_statement_in_the_source_prepares_against_the_migrated_schema() {
    let (statements, assembled) = statements();
    // A scan that found nothing would pass for the wrong reason.
    assert!(statements.len() > 100, "only {} statements found", statements.len());
    assert!(assembled < statements.len() / 4, "{assembled} statements are assembled at run time");
    let database = TestDatabase::migrated().await;
    let client = database.client().await;

    let failed = unprepared(&client, &statements).await;

    eprintln!("{} statements prepared; {assembled} literals hold a placeholder filled at run time", statements.len());
    assert!(
        failed.is_empty(),
        "{} of {} statements do not prepare:\n{}",
        failed.len(),
        statements.len(),
        failed.join("\n")
    );
}

#[tokio::test]
async fn a_column_renamed_in_the_schema_fails_the_statements_that_use_it_by_name() {
    let (statements, _) = statements();
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    client.batch_execute("ALTER TABLE tasks RENAME COLUMN title TO heading").await.unwrap();

    let failed = unprepared(&client, &statements).await;

    assert!(!failed.is_empty());
    for failure in &failed {
        assert!(failure.contains("column") && failure.contains("title"), "{failure}");
    }
    assert!(failed.iter().any(|f| f.starts_with("src/backend/routes/traffic.rs:")), "{failed:#?}");
}
