//! Profiles kept as TOML files next to the worker: the fallback when n8n is off or does not
//! know an agent.

use std::collections::BTreeMap;
use std::path::Path;

use super::ProfileError;
use super::profile::{AgentProfile, ProfileDoc};
use crate::config::ProfileDefaults;

/// Loads every `*.toml` in `dir`, keyed by file stem (the agent id).
///
/// Any broken file fails the whole load, listing every problem in every file, so a bad profile
/// is found at start-up and not when a caller picks that agent.
pub fn load_dir(dir: &Path, defaults: &ProfileDefaults) -> Result<BTreeMap<String, AgentProfile>, ProfileError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ProfileError::Dir { dir: dir.to_owned(), source })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();

    let mut profiles = BTreeMap::new();
    let mut problems = Vec::new();
    for path in paths {
        let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        match load_file(&path, &id, defaults) {
            Ok(profile) => {
                profiles.insert(id, profile);
            }
            Err(why) => problems.extend(why.into_iter().map(|w| format!("{}: {w}", path.display()))),
        }
    }
    if problems.is_empty() { Ok(profiles) } else { Err(ProfileError::InvalidLocal { problems }) }
}

fn load_file(path: &Path, id: &str, defaults: &ProfileDefaults) -> Result<AgentProfile, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot be read: {e}")])?;
    let doc: ProfileDoc = toml::from_str(&text).map_err(|e| vec![e.to_string().trim_end().replace('\n', " ")])?;
    doc.resolve(id, defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::profiles::tests::defaults;

    #[test]
    fn the_shipped_profiles_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let profiles = load_dir(&dir, &defaults()).unwrap_or_else(|e| panic!("{e}"));
        assert!(profiles.contains_key("default"), "default.toml must ship");
        assert!(profiles.len() >= 3, "at least two realistic profiles besides the default");
        for profile in profiles.values() {
            assert!(profile.system_prompt.len() > 400, "{} has a prompt too thin to use", profile.id);
            assert!(!profile.greeting.is_empty(), "{} has no greeting", profile.id);
        }
        assert!(profiles.values().any(|p| p.language == "hi-IN" && !p.lead_fields.is_empty()));
        assert!(profiles.values().any(|p| p.language == "en-IN" && !p.lead_fields.is_empty()));
    }

    #[test]
    fn every_broken_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("good.toml"), "system_prompt = \"ok\"").expect("write");
        std::fs::write(dir.path().join("typo.toml"), "system_promt = \"ok\"").expect("write");
        std::fs::write(dir.path().join("hot.toml"), "system_prompt = \"ok\"\n[llm]\ntemperature = 9.0").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let error = load_dir(dir.path(), &defaults()).expect_err("two bad files").to_string();
        assert!(error.contains("typo.toml") && error.contains("unknown field `system_promt`"), "{error}");
        assert!(error.contains("hot.toml") && error.contains("llm.temperature"), "{error}");
        assert!(!error.contains("good.toml"), "{error}");
    }

    #[test]
    fn a_missing_directory_is_reported() {
        let error = load_dir(Path::new("/nonexistent/profiles"), &defaults()).expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/profiles"), "{error}");
    }
}
