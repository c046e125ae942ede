//! Fuzzing the loader: random edits of the shipped YAML files (lines
//! deleted, duplicated, re-indented, values replaced by junk, files cut
//! short) must never panic, and every error must name its file (and its
//! line when the YAML parser or a spanned value knows it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_config::{load, Paths};
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

const FILES: [&str; 11] = [
    "skills.yaml",
    "routing.yaml",
    "pipelines.yaml",
    "budget.yaml",
    "models.yaml",
    "schedules.yaml",
    "events.yaml",
    "metrics.yaml",
    "tools.yaml",
    "rubrics.yaml",
    "scripted/demo.yaml",
];

const JUNK: [&str; 14] = [
    "",
    "-1",
    "[",
    "{",
    "}",
    "null",
    "\"x\"",
    "99999999999999999999999",
    "P9",
    "ü\u{0}",
    ": :",
    "- - -",
    "*anchor",
    "!!binary AAAA",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete,
    Duplicate,
    Indent,
    /// Replace what follows the first ':' with junk.
    Value(usize),
    Insert(String),
    CutHere,
}

fn edit() -> impl Strategy<Value = (usize, usize, Edit)> {
    (
        0..FILES.len(),
        any::<usize>(),
        prop_oneof![
            Just(Edit::Delete),
            Just(Edit::Duplicate),
            Just(Edit::Indent),
            (0..JUNK.len()).prop_map(Edit::Value),
            "[ -~]{0,40}".prop_map(Edit::Insert),
            Just(Edit::CutHere),
        ],
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn apply(path: &Path, line: usize, e: &Edit) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        return;
    }
    let i = line % lines.len();
    match e {
        Edit::Delete => {
            lines.remove(i);
        }
        Edit::Duplicate => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        Edit::Indent => lines[i] = format!("   {}", lines[i]),
        Edit::Value(j) => {
            if let Some(at) = lines[i].find(':') {
                lines[i] = format!("{}: {}", &lines[i][..at], JUNK[*j]);
            }
        }
        Edit::Insert(s) => lines.insert(i, s.clone()),
        Edit::CutHere => lines.truncate(i),
    }
    fs::write(path, lines.join("\n")).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn edited_config_never_panics_and_every_error_names_its_file(
        edits in proptest::collection::vec(edit(), 1..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["config", "skills"] {
            copy_dir(&repo_root().join(sub), &dir.path().join(sub));
        }
        for (file, line, e) in &edits {
            apply(&dir.path().join("config").join(FILES[*file]), *line, e);
        }
        let paths = Paths::under(dir.path());
        if let Err(errors) = load(&paths) {
            prop_assert!(!errors.0.is_empty());
            for err in &errors.0 {
                prop_assert!(!err.message.trim().is_empty(), "{err}");
                prop_assert!(
                    err.file.starts_with(dir.path()),
                    "error without its file: {err}"
                );
                let shown = err.to_string();
                prop_assert!(shown.contains(&*err.file.to_string_lossy()), "{shown}");
                if let Some(l) = err.line {
                    prop_assert!(l >= 1, "{shown}");
                }
            }
        }
    }
}
