//! A webhook tool against webhooks that answer as n8n does: what it sends (the body, the
//! idempotency key, the signature), what the model gets back for every kind of answer, and when
//! it tries again.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::mocks::tool_hooks::{Hook, MockToolHooks};
use voice_agent::agent::{CallContext, Tool, ToolOutput, ToolRequest, WebhookTool, WebhookToolConfig};
use voice_agent::config::Secret;
use voice_agent::pipeline::record::Caller;
use voice_agent::providers::llm::ToolSpec;

const SECRET: &str = "whsec_tools_test";

fn tool(hooks: &MockToolHooks, path: &str, side_effects: bool, timeout: Duration) -> WebhookTool {
    let config = WebhookToolConfig {
        spec: ToolSpec {
            name: "book_slot".into(),
            description: "Books a slot.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"date": {"type": "string"}, "time": {"type": "string"}},
                "required": ["date", "time"],
                "additionalProperties": false,
            }),
        },
        url: hooks.url(path),
        timeout,
        side_effects,
        filler: None,
        secret: Some(Secret::new(SECRET)),
    };
    WebhookTool::new(config, WebhookTool::client().expect("a client"))
}

fn request(arguments: &str) -> ToolRequest {
    ToolRequest {
        name: "book_slot".into(),
        id: "AJ_tools:call_7".into(),
        arguments: arguments.into(),
        context: CallContext {
            call_id: "AJ_tools".into(),
            agent_id: "clinic-hi".into(),
            caller: Some(Caller { identity: "user-1".into(), name: "Asha".into() }),
            lead: BTreeMap::from([("phone".to_owned(), "9876543210".to_owned())]),
        },
    }
}

const ARGUMENTS: &str = r#"{"date":"2026-11-23","time":"10:30"}"#;

fn result(output: &ToolOutput) -> Value {
    serde_json::from_str(&output.result).expect("results are JSON")
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn the_webhook_gets_the_call_signed_and_its_answer_reaches_the_model() {
    let hooks = MockToolHooks::start().await;
    hooks.answer(
        "book",
        [Hook::Json(
            StatusCode::OK,
            r#"{"booked":true,"booking_id":"BK-1","say":"Booked for 10:30.","end_call":true}"#.into(),
        )],
    );
    let output = tool(&hooks, "book", true, Duration::from_secs(5)).call(request(ARGUMENTS)).await;
    assert_eq!(output.say.as_deref(), Some("Booked for 10:30."), "`say` is spoken as written");
    assert!(output.end_call, "`end_call` ends the call");
    assert_eq!(result(&output), json!({"booked": true, "booking_id": "BK-1", "end_call": true}));

    let sent = hooks.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].json(),
        json!({
            "call_id": "AJ_tools",
            "agent_id": "clinic-hi",
            "tool": "book_slot",
            "arguments": {"date": "2026-11-23", "time": "10:30"},
            "caller": {"identity": "user-1", "name": "Asha"},
            "lead": {"phone": "9876543210"},
            "idempotency_key": "AJ_tools:call_7",
        })
    );
    assert_eq!(sent[0].header("idempotency-key"), Some("AJ_tools:call_7"));
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    assert_eq!(sent[0].header("x-signature-256"), Some(signature(&sent[0].body).as_str()), "signed like call records");
}

#[tokio::test]
async fn every_non_answer_becomes_a_readable_failure_for_the_model() {
    let hooks = MockToolHooks::start().await;
    let cases = [
        ("started", Hook::WorkflowStarted, "Workflow was started"),
        ("inactive", Hook::NotRegistered, "not registered"),
        ("empty", Hook::Empty, "answered nothing"),
        ("express", Hook::CannotPost, "does not exist yet"),
        ("html", Hook::Json(StatusCode::OK, "<html><body>Login</body></html>".into()), "HTML page"),
        ("text", Hook::Json(StatusCode::OK, "booked".into()), "not JSON"),
        (
            "broken",
            Hook::Json(StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"Error in workflow"}"#.into()),
            "HTTP 500",
        ),
        (
            "refused",
            Hook::Json(StatusCode::UNPROCESSABLE_ENTITY, r#"{"error":"time must be HH:MM"}"#.into()),
            "HTTP 422",
        ),
    ];
    let count = cases.len();
    for (path, hook, says) in cases {
        hooks.answer(path, [hook]);
        let output = tool(&hooks, path, false, Duration::from_secs(5)).call(request(ARGUMENTS)).await;
        let answer = result(&output);
        assert_eq!(answer["ok"], false, "{path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| e.contains(says)), "{path}: {answer}");
        assert!(output.say.is_none() && !output.end_call, "{path}");
    }
    let refused = tool(&hooks, "refused", false, Duration::from_secs(5)).call(request(ARGUMENTS)).await;
    assert_eq!(result(&refused)["detail"], "time must be HH:MM", "the webhook's own words help the model fix it");
    assert_eq!(hooks.requests().len(), count + 1, "each answered once: no retries for answers");
}

#[tokio::test]
async fn arguments_that_do_not_fit_go_back_to_the_model_without_a_request() {
    let hooks = MockToolHooks::start().await;
    hooks.answer("book", [Hook::Json(StatusCode::OK, "{}".into())]);
    let book = tool(&hooks, "book", true, Duration::from_secs(5));
    for (arguments, says) in [
        (r#"{"date":"2026-11-23"}"#, "`time` is required"),
        (r#"{"date":"2026-11-23","time":1030}"#, "`time` must be string"),
        (r#"{"date":"2026-11-23","time":"10:30","doctor":"x"}"#, "`doctor` is not expected"),
        (r#"{"date": "#, "not valid JSON"),
        ("[1]", "must be a JSON object"),
    ] {
        let answer = result(&book.call(request(arguments)).await);
        assert_eq!(answer["ok"], false);
        assert!(answer["error"].as_str().is_some_and(|e| e.contains(says)), "{arguments}: {answer}");
    }
    assert!(hooks.requests().is_empty(), "nothing reached the webhook");
}

#[tokio::test]
async fn a_slow_lookup_is_tried_once_more_and_a_slow_booking_never() {
    let hooks = MockToolHooks::start().await;
    let late = Hook::Slow(Duration::from_secs(3), Box::new(Hook::Json(StatusCode::OK, r#"{"free":[]}"#.into())));
    hooks.answer("lookup", [late.clone(), Hook::Json(StatusCode::OK, r#"{"free":["09:00"]}"#.into())]);
    let started = Instant::now();
    let output = tool(&hooks, "lookup", false, Duration::from_millis(400)).call(request(ARGUMENTS)).await;
    assert_eq!(result(&output), json!({"free": ["09:00"]}), "the second try answered");
    assert!(started.elapsed() < Duration::from_secs(3), "the first try was given up at its timeout");
    let keys: Vec<Option<String>> =
        hooks.requests().iter().map(|r| r.header("idempotency-key").map(str::to_owned)).collect();
    assert_eq!(keys, [Some("AJ_tools:call_7".to_owned()), Some("AJ_tools:call_7".to_owned())], "one key per call");

    hooks.answer("book", [late]);
    let output = tool(&hooks, "book", true, Duration::from_millis(400)).call(request(ARGUMENTS)).await;
    let answer = result(&output);
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("did not answer within 0.4 s")), "{answer}");
    let bookings = hooks.requests().iter().filter(|r| r.path == "book").count();
    assert_eq!(bookings, 1, "a tool with side effects is never tried twice");

    hooks.answer("slow", [Hook::Slow(Duration::from_secs(3), Box::new(Hook::Empty))]);
    let output = tool(&hooks, "slow", false, Duration::from_millis(300)).call(request(ARGUMENTS)).await;
    assert!(result(&output)["error"].as_str().is_some_and(|e| e.contains("within 0.3 s, twice")), "{}", output.result);
}
