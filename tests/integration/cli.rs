//! Bad command-line input: exit 2 with a message that says what is wrong.

use crate::backend::TestApp;
use crate::helpers::{grace, into_a_closed_pipe, run_grace, Ran};
use grace::specification::Role;

#[tokio::test]
async fn a_malformed_database_url_exits_2_naming_the_problem_not_the_password() {
    for url in ["postgres://grace:s3cret-pw@localhost:notaport/grace", "mysql://grace:s3cret-pw@localhost/grace"] {
        let ran = run_grace(&["health", "--database-url", url]).await;
        assert_eq!(ran.code, Some(2), "{}", ran.all_output());
        assert!(ran.stderr.contains("error: invalid database URL"), "{}", ran.stderr);
        assert!(!ran.all_output().contains("s3cret-pw"), "password leaked: {}", ran.all_output());
    }
}

#[tokio::test]
async fn an_unknown_flag_or_command_exits_2_with_usage() {
    let ran = run_grace(&["health", "--bogus"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("unexpected argument '--bogus'"), "{}", ran.stderr);
    assert!(ran.stderr.contains("Usage: grace health"), "{}", ran.stderr);

    let ran = run_grace(&["frobnicate"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("unrecognized subcommand 'frobnicate'"), "{}", ran.stderr);
}

#[tokio::test]
async fn help_never_shows_the_database_url_from_the_environment() {
    let mut command = crate::helpers::grace();
    command.args(["health", "--help"]).env("DATABASE_URL", "postgres://grace:s3cret-pw@localhost/grace");
    let ran: crate::helpers::Ran = command.output().await.unwrap().into();
    assert_eq!(ran.code, Some(0));
    assert!(ran.stdout.contains("--database-url <URL>"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("s3cret-pw"), "{}", ran.stdout);
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    let ran = into_a_closed_pipe(grace().arg("openapi")).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert!(ran.stderr.is_empty(), "nothing to say on stderr either: {}", ran.stderr);
}

#[tokio::test]
async fn a_scenario_against_a_backend_checks_every_role_s_token_before_phase_1() {
    let app = TestApp::spawn().await;
    let all = |approver: &str| {
        format!(
            "operator={},approver={approver},governance={},admin={}",
            app.token(Role::Operator),
            app.token(Role::Governance),
            app.token(Role::Admin)
        )
    };
    let out = tempfile::tempdir().unwrap();
    let scenario = |tokens: String| {
        let mut command = grace();
        command
            .args(["scenario", "--backend", &app.address, "--run-time", "1s"])
            .arg("--out")
            .arg(out.path())
            .env("DATABASE_URL", app.database.url.to_string())
            .env("GRACE_TOKENS", tokens);
        command
    };
    let swapped = format!(
        "operator={},approver={},governance={},admin={}",
        app.token(Role::Admin),
        app.token(Role::Approver),
        app.token(Role::Governance),
        app.token(Role::Operator)
    );
    let cases = [
        (format!("operator={}", app.token(Role::Operator)), "no token for the approver, governance, admin roles"),
        (all("approver-token-nobody-has"), "the backend refused the approver token"),
        (swapped, "the operator token is the backend's admin token"),
    ];
    for (tokens, says) in cases {
        let ran: Ran = scenario(tokens).output().await.unwrap().into();
        assert_eq!(ran.code, Some(2), "{}", ran.all_output());
        assert!(ran.stderr.contains(says), "{says}: {}", ran.stderr);
        assert!(ran.stderr.contains("every role"), "{}", ran.stderr);
        assert!(!ran.stdout.contains("phase 1/8"), "nothing ran: {}", ran.stdout);
    }
    let unwritable: Ran = grace().args(["scenario", "--out", "/dev/null/reports"]).output().await.unwrap().into();
    assert_eq!(unwritable.code, Some(2), "{}", unwritable.all_output());
    assert!(unwritable.stderr.contains("cannot write into --out /dev/null/reports"), "{}", unwritable.stderr);
}
