//! `docker-compose.yml` brings up the whole stack: validated by PyPI's `docker-compose config`
//! (no Docker daemon needed; scripts/setup.sh installs it in tests/compose/.venv) with a `.env`
//! as a user would fill it from `.env.example`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn venv_bin(name: &str) -> PathBuf {
    let path = support::repo_path("tests/compose/.venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run scripts/setup.sh", path.display());
    path
}

/// A project folder with the repository's compose file and the given `.env`.
fn project(env: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a project folder");
    std::fs::copy(support::repo_path("docker-compose.yml"), dir.path().join("docker-compose.yml")).expect("copied");
    std::fs::write(dir.path().join(".env"), env).expect("writable");
    dir
}

/// `docker-compose config` in `dir`: the resolved file as JSON, or what it said when it refused.
fn config(dir: &Path) -> Result<Value, String> {
    let output = Command::new(venv_bin("docker-compose")).arg("config").current_dir(dir).output().expect("runs");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    // Its output is YAML; the venv's PyYAML turns it into JSON.
    let mut convert = Command::new(venv_bin("python"))
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    std::io::Write::write_all(&mut convert.stdin.take().expect("piped"), &output.stdout).expect("written");
    let converted = convert.wait_with_output().expect("converted");
    Ok(serde_json::from_slice(&converted.stdout).expect("JSON"))
}

/// `.env.example` with the keys compose needs filled in, as its comments ask.
fn filled_env() -> String {
    let example = std::fs::read_to_string(support::repo_path(".env.example")).expect("readable");
    example
        .lines()
        .map(|line| match line {
            "LIVEKIT_API_KEY=" => "LIVEKIT_API_KEY=APIcomposetest".to_owned(),
            "LIVEKIT_API_SECRET=" => "LIVEKIT_API_SECRET=0123456789abcdef0123456789abcdef".to_owned(),
            "N8N_WEBHOOK_SECRET=" => "N8N_WEBHOOK_SECRET=lead-signing-secret".to_owned(),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_whole_stack_comes_up_from_one_file_and_the_worker_scales() {
    let dir = project(&filled_env());
    let config = config(dir.path()).unwrap_or_else(|e| panic!("docker-compose refused the file: {e}"));
    let services = config["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["livekit", "n8n", "redis", "web", "worker"]);

    let livekit = &services["livekit"];
    assert!(livekit["image"].as_str().is_some_and(|i| i.starts_with("livekit/livekit-server")), "the official image");
    assert_eq!(
        livekit["environment"]["LIVEKIT_KEYS"], "APIcomposetest: 0123456789abcdef0123456789abcdef",
        "LiveKit signs with the keys of .env"
    );
    assert!(livekit["volumes"].to_string().contains("deploy/livekit.yaml"), "with its config file");
    let n8n = &services["n8n"];
    assert!(n8n["image"].as_str().is_some_and(|i| i.starts_with("n8nio/n8n")), "the official image");
    assert!(n8n["volumes"].to_string().contains("/voice-agent/workflows"), "our workflows are there to import");
    assert_eq!(n8n["environment"]["LEAD_CAPTURE_SECRET"], "lead-signing-secret", "records are checked with our secret");

    for name in ["web", "worker"] {
        let environment = &services[name]["environment"];
        assert_eq!(environment["LIVEKIT_URL"], "ws://livekit:7880", "{name}");
        assert_eq!(environment["N8N_BASE_URL"], "http://n8n:5678", "{name}");
        assert_eq!(environment["REDIS_URL"], "redis://redis:6379", "{name}");
    }
    assert_eq!(services["web"]["environment"]["LIVEKIT_PUBLIC_URL"], "ws://localhost:7880", "browsers reach LiveKit");
    let web = &services["web"];
    assert_eq!(web["environment"]["METRICS_HOST"], "0.0.0.0", "Prometheus on the compose network scrapes it");
    assert!(!web["ports"].to_string().contains("9464"), "metrics are not published on the host");
    let volumes = web["volumes"].to_string();
    assert!(volumes.contains("outbox:/app/data:ro"), "/admin reads the spool, read-only: {volumes}");

    let worker = &services["worker"];
    assert!(worker.get("container_name").is_none(), "a fixed name would stop `--scale worker=N`");
    assert!(worker.get("ports").is_none(), "a fixed host port would stop `--scale worker=N`");
    assert!(worker["volumes"].to_string().contains("/app/data"), "every copy shares the spool volume");
}

#[test]
fn without_livekit_keys_compose_says_which_to_set() {
    let dir = project("N8N_WEBHOOK_SECRET=\n");
    let refusal = config(dir.path()).expect_err("LiveKit cannot start without keys");
    assert!(refusal.contains("LIVEKIT_API_KEY"), "{refusal}");
}
