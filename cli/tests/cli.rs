//! The `mktg` binary as a user runs it: clear errors, nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn mktg(args: &[&str], env: &[(&str, &str)]) -> Output {
    let root = mktg_testkit::repo_root();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mktg"));
    cmd.args(args)
        .current_dir(&root)
        .env_remove("ANTHROPIC_API_KEY");
    for var in [
        "TABLE_NAME",
        "EVENT_BUS_NAME",
        "DIRECTOR_QUEUE_URL",
        "AGENT_QUEUE_URL",
        "REVIEW_QUEUE_URL",
        "TOOL_QUEUE_URL",
        "AWS_ENDPOINT_URL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Resource names that point at a port where nothing listens.
const NOWHERE: &[(&str, &str)] = &[
    ("TABLE_NAME", "t"),
    ("EVENT_BUS_NAME", "b"),
    ("DIRECTOR_QUEUE_URL", "http://127.0.0.1:1/q/d"),
    ("AGENT_QUEUE_URL", "http://127.0.0.1:1/q/a"),
    ("REVIEW_QUEUE_URL", "http://127.0.0.1:1/q/r"),
    ("TOOL_QUEUE_URL", "http://127.0.0.1:1/q/t"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "x"),
    ("AWS_SECRET_ACCESS_KEY", "x"),
];

#[test]
fn validate_accepts_the_shipped_config() {
    let out = mktg(&["validate"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("config OK: 26 skills in 6 squads"),
        "{}",
        text(&out)
    );
}

#[test]
fn validate_rejects_a_broken_config_with_file_and_line() {
    let tmp = mktg_testkit::config_copy();
    let dir = tmp.path();
    let file = dir.join("config/pipelines.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap().replacen(
        "      - ab-test-setup\n",
        "      - ab-testing\n",
        1,
    );
    std::fs::write(&file, yaml).unwrap();
    let out = mktg(&["--root", dir.to_str().unwrap(), "validate"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("pipelines.yaml:"), "{t}");
    assert!(t.contains("unknown skill \"ab-testing\" in pipeline \"Page Launch\" (did you mean \"ab-test-setup\"?)"), "{t}");
}

#[test]
fn a_missing_emulator_is_reported_with_how_to_start_it() {
    let out = mktg(&["--env-file", "/nonexistent.env", "status"], NOWHERE);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("cannot reach DynamoDB at http://127.0.0.1:1"),
        "{t}"
    );
    assert!(t.contains("localstack/up"), "{t}");
}

#[test]
fn missing_resource_names_are_listed_together() {
    let out = mktg(&["--env-file", "/nonexistent.env", "status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("missing environment variables: TABLE_NAME, EVENT_BUS_NAME"),
        "{t}"
    );
}

#[test]
fn an_unknown_pipeline_template_is_refused_before_anything_is_sent() {
    let out = mktg(
        &[
            "--env-file",
            "/nonexistent.env",
            "pipeline",
            "Conversion Sprnt",
        ],
        NOWHERE,
    );
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains(
            "unknown pipeline template \"Conversion Sprnt\"; known templates: Content Production"
        ),
        "{t}"
    );
}

#[test]
fn help_teaches_the_typical_session() {
    let out = mktg(&["--help"], &[]);
    let t = text(&out);
    assert!(t.contains("localstack/up"), "{t}");
    assert!(t.contains("mktg goal"), "{t}");
}
