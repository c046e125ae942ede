//! Loading the project's own config, and how each kind of mistake is reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_config::{load, Paths};
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of the real config and skills in a temp dir, to break on purpose.
fn copy_of_real_config() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    for sub in ["config", "skills"] {
        copy_dir(&root.join(sub), &dir.path().join(sub));
    }
    let paths = Paths::under(dir.path());
    (dir, paths)
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

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn line_of(path: &Path, needle: &str) -> u32 {
    let text = fs::read_to_string(path).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1
}

#[test]
fn the_shipped_config_loads_with_all_26_skills_and_every_template() {
    let cfg = load(&Paths::under(repo_root())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.skills.len(), 26);
    let squads: Vec<&str> = cfg.squads.keys().map(String::as_str).collect();
    assert_eq!(
        squads,
        [
            "activate",
            "convert",
            "creative",
            "foundation",
            "measure",
            "strategy"
        ]
    );
    for skill in cfg.skills.values() {
        let words = skill.instructions.split_whitespace().count();
        assert!(
            words >= 300,
            "{} SKILL.md has only {words} words",
            skill.name
        );
        for section in &skill.review.required_sections {
            assert!(
                skill.instructions.contains(&format!("## {section}")),
                "{} SKILL.md does not teach its required section {section}",
                skill.name
            );
        }
    }
    assert!(cfg.pipeline("content-production").is_some());
    assert_eq!(
        cfg.pipeline("Product Launch").unwrap().steps[1]
            .skills
            .len(),
        4
    );
    // The review chain's director step is the reviewer's own approval.
    assert_eq!(
        cfg.pipeline("Copywriting Review Chain")
            .unwrap()
            .steps
            .len(),
        3
    );
}

#[test]
fn an_unknown_skill_in_a_pipeline_is_reported_with_file_line_and_a_hint() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("pipelines.yaml");
    replace_in(&file, "      - copy-editing\n", "      - copy-editting\n");
    let line = line_of(&file, "copy-editting");
    let err = load(&paths).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.0.len(), 1, "{text}");
    assert_eq!(err.0[0].line, Some(line), "{text}");
    assert!(text.contains("pipelines.yaml:"), "{text}");
    assert!(
        text.contains("unknown skill \"copy-editting\" in pipeline \"Content Production\""),
        "{text}"
    );
    assert!(text.contains("did you mean \"copy-editing\""), "{text}");
}

#[test]
fn a_yaml_syntax_error_names_the_file_and_line() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("budget.yaml");
    replace_in(&file, "per_goal_usd: 25", "per_goal_usd: [25");
    let err = load(&paths).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(err.0[0].file.ends_with("budget.yaml"), "{err}");
    assert!(err.0[0].line.is_some(), "{err}");
}

#[test]
fn an_unknown_field_is_an_error_not_silently_ignored() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("skills.yaml");
    replace_in(
        &file,
        "    tier: sonnet\n",
        "    tier: sonnet\n    teir: opus\n",
    );
    let err = load(&paths).unwrap_err();
    assert!(err.to_string().contains("teir"), "{err}");
    assert!(err.0[0].line.is_some(), "{err}");
}

#[test]
fn several_mistakes_are_all_reported_at_once() {
    let (_dir, paths) = copy_of_real_config();
    let skills = paths.config_dir.join("skills.yaml");
    replace_in(&skills, "    squad: measure\n", "    squad: measur\n");
    replace_in(&skills, "    tier: opus\n", "    tier: gpt\n");
    let routing = paths.config_dir.join("routing.yaml");
    replace_in(&routing, "pipeline: SEO Cycle", "pipeline: SEO Cycel");
    let err = load(&paths).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.0.len(), 3, "{text}");
    assert!(text.contains("unknown squad \"measur\""), "{text}");
    assert!(text.contains("unknown model tier \"gpt\""), "{text}");
    assert!(text.contains("unknown pipeline \"SEO Cycel\""), "{text}");
    assert!(err.0.iter().all(|e| e.line.is_some()), "{text}");
}

#[test]
fn a_skill_without_its_skill_md_is_reported() {
    let (_dir, paths) = copy_of_real_config();
    fs::remove_file(paths.skills_dir.join("seo-audit/SKILL.md")).unwrap();
    let err = load(&paths).unwrap_err();
    assert!(
        err.to_string()
            .contains("skill \"seo-audit\" has no instructions"),
        "{err}"
    );
}

#[test]
fn a_new_skill_is_one_yaml_entry_and_one_skill_md() {
    let (_dir, paths) = copy_of_real_config();
    let skills = paths.config_dir.join("skills.yaml");
    let mut text = fs::read_to_string(&skills).unwrap();
    text.push_str("  - name: podcast-outreach\n    squad: activate\n    description: Pitches podcast hosts.\n    tier: sonnet\n    review:\n      required_sections: [Pitch]\n      min_words: 100\n");
    fs::write(&skills, text).unwrap();
    fs::create_dir_all(paths.skills_dir.join("podcast-outreach")).unwrap();
    fs::write(
        paths.skills_dir.join("podcast-outreach/SKILL.md"),
        "---\nname: podcast-outreach\ndescription: pitches\n---\n# Podcast outreach\n",
    )
    .unwrap();
    let cfg = load(&paths).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.skills.len(), 27);
}

#[test]
fn the_tool_catalogue_example_loads_as_a_tools_yaml() {
    let (_dir, paths) = copy_of_real_config();
    fs::copy(
        paths.config_dir.join("tools.catalog.yaml"),
        paths.config_dir.join("tools.yaml"),
    )
    .unwrap();
    let config = load(&paths).unwrap_or_else(|e| panic!("{e}"));
    for name in [
        "ga4",
        "search-console",
        "gtm",
        "pagespeed",
        "wordpress",
        "webflow",
        "github",
        "browser",
        "mailchimp",
        "customerio",
        "resend",
        "google-ads",
        "meta-ads",
        "linkedin",
        "twitter",
        "buffer",
        "stripe",
    ] {
        assert!(config.tools.servers.contains_key(name), "{name} missing");
    }
    // Skills ask for a capability; the registry names the tenant's ESP.
    let esp = config
        .tools
        .provider_of("email.send", &"email-sequence".into())
        .map(|s| s.name.clone());
    assert!(esp.is_some(), "no ESP offers email.send to email-sequence");
}

#[test]
fn tools_yaml_mistakes_are_reported_with_file_and_line() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("tools.yaml");
    fs::write(
        &file,
        "servers:\n  both:\n    command: npx\n    url: https://example.test/mcp\n    skills: [seo-audit]\n  neither:\n    skills: [seo-audit]\n  typo:\n    command: x\n    skills: [seo-audti]\n    effect: delete\n    rate: {per_minute: 0}\n    env: [lower_case]\n",
    )
    .unwrap();
    let err = load(&paths).unwrap_err();
    let text = err.to_string();
    let expect = [
        ("url: https://example.test/mcp", "not both"),
        ("skills: [seo-audti]", "unknown skill \"seo-audti\""),
        ("effect: delete", "not one of read, write, spend"),
        ("env: [lower_case]", "not an environment variable name"),
    ];
    for (needle, message) in expect {
        let line = line_of(&file, needle);
        assert!(
            err.0
                .iter()
                .any(|e| e.line == Some(line) && e.message.contains(message)),
            "expected \"{message}\" at tools.yaml:{line}:\n{text}"
        );
    }
    // A server's own problems point at its entry (the line after its name).
    let neither = line_of(&file, "neither:") + 1;
    assert!(
        err.0
            .iter()
            .any(|e| e.line == Some(neither) && e.message.contains("needs a command")),
        "{text}"
    );
    assert!(text.contains("did you mean \"seo-audit\""), "{text}");
    assert!(text.contains("rate per_minute is 0"), "{text}");
}

#[test]
fn a_skill_asks_for_a_capability_and_gets_whichever_esp_is_configured() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("tools.yaml");
    let esp = |name: &str| {
        format!(
            "servers:\n  {name}:\n    url: https://{name}.example.test/mcp\n    capabilities: [email.send, email.campaign]\n    effect: spend\n"
        )
    };
    for vendor in ["mailchimp", "resend"] {
        fs::write(&file, esp(vendor)).unwrap();
        let config = load(&paths).unwrap_or_else(|e| panic!("{e}"));
        let skill = "email-sequence".into();
        let routed: Vec<&str> = config
            .tools
            .for_skill(&skill)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(routed, [vendor]);
        assert_eq!(
            config
                .tools
                .provider_of("email.send", &skill)
                .map(|s| s.name.as_str()),
            Some(vendor)
        );
        // A skill that does not ask for email gets nothing.
        assert_eq!(config.tools.for_skill(&"seo-audit".into()).count(), 0);
    }
}

#[test]
fn every_shipped_skill_has_a_rubric_and_a_new_skill_may_name_its_own() {
    let (_dir, paths) = copy_of_real_config();
    let config = load(&paths).unwrap();
    assert_eq!(config.rubrics.pass_overall, 7);
    for skill in config.skills.keys() {
        let rubric = config
            .rubric_for(skill)
            .unwrap_or_else(|| panic!("{skill} has no rubric"));
        assert!(rubric.dimensions.len() >= 3);
        for d in &rubric.dimensions {
            assert_eq!(d.levels.keys().copied().collect::<Vec<_>>(), [2, 5, 8, 10]);
        }
    }
    // `rubric:` in skills.yaml picks one by name; a typo is an error with a hint.
    let file = paths.config_dir.join("skills.yaml");
    replace_in(
        &file,
        "    tier: sonnet\n    inputs_from: [launch-strategy, onboarding-cro]\n",
        "    tier: sonnet\n    inputs_from: [launch-strategy, onboarding-cro]\n    rubric: copy\n",
    );
    assert_eq!(
        load(&paths)
            .unwrap()
            .rubric_for(&"email-sequence".into())
            .unwrap()
            .name,
        "copy"
    );
    replace_in(&file, "    rubric: copy\n", "    rubric: cpy\n");
    let err = load(&paths).unwrap_err().to_string();
    assert!(
        err.contains("unknown rubric \"cpy\"") && err.contains("did you mean \"copy\""),
        "{err}"
    );
}

#[test]
fn rubric_mistakes_are_reported_with_file_and_line() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("rubrics.yaml");
    let text = fs::read_to_string(&file).unwrap();
    // A skill in two rubrics, and a dimension without its level 10.
    let text = text.replacen(
        "skills: [copywriting,",
        "skills: [seo-audit, copywriting,",
        1,
    );
    fs::write(&file, &text).unwrap();
    let err = load(&paths).unwrap_err().to_string();
    assert!(err.contains("skill \"seo-audit\" is in rubric"), "{err}");
    assert!(err.contains("rubrics.yaml:"), "{err}");
}

#[test]
fn a_dependency_cycle_is_reported_at_the_edge_that_closes_it() {
    let (_dir, paths) = copy_of_real_config();
    let file = paths.config_dir.join("skills.yaml");
    replace_in(
        &file,
        "    inputs_from: [content-strategy, pricing-strategy, competitor-alternatives]\n",
        "    inputs_from: [content-strategy, pricing-strategy, competitor-alternatives, page-cro]\n",
    );
    let err = load(&paths).unwrap_err();
    let text = err.to_string();
    // Reported at an edge of the loop (page-cro's own inputs_from line).
    let line = line_of(&file, "  - name: page-cro") + 4;
    assert!(
        err.0
            .iter()
            .any(|e| e.line == Some(line) && e.message.contains("inputs_from makes a cycle")),
        "{text}"
    );
    assert!(
        text.contains("copywriting") && text.contains("page-cro") && text.contains("feedback_from"),
        "{text}"
    );
}
