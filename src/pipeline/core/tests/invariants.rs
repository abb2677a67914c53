//! Random calls: whatever happens in whatever order, the core keeps its promises to the shell.

use std::collections::{HashMap, HashSet};

use super::*;

/// A deterministic xorshift generator.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[test]
fn every_deadline_is_ahead_and_every_segment_and_job_is_closed_once() {
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    for round in 0..60 {
        let mut config = config();
        config.turn.likely_end = (round % 2 == 0).then_some(ms(200));
        config.preemptive = round % 3 != 0;
        config.endpointing =
            (round % 2 == 0).then_some(Endpointing { complete: ms(300), default: ms(500), unfinished: ms(1_000) });
        config.min_interruption_words = round % 4;
        config.tools = vec![ExternalTool {
            spec: ToolSpec { name: "lookup".into(), description: "x".into(), parameters: serde_json::json!({}) },
            side_effects: round % 5 == 0,
            filler: None,
        }];
        config.limits = CallLimits {
            max_duration: Some(ms(60_000)),
            goodbye: "Bye now.".into(),
            silence_prompt: Some(ms(8_000)),
            still_there: if round % 2 == 0 { "Hello?".into() } else { String::new() },
            silence_hangup: Some(ms(15_000)),
            no_audio: Some(ms(5_000)),
        };
        let mut call = Call::with_caller(config);
        let texts = ["", "Hello there.", "I want to book and", "My number is 98765", "Stop."];
        for step in 0..400 {
            match random.below(20) {
                0..=7 => call.speak(20 * (1 + random.below(40))),
                8..=14 => call.silence(20 * (1 + random.below(60))),
                15 => call.wait(20 * random.below(100)),
                16 => {
                    let text = texts[random.below(texts.len() as u64) as usize];
                    call.transcripts([if random.below(8) == 0 { Err("down") } else { Ok(text) }]);
                }
                17 => call.replies([match random.below(5) {
                    0 => Reply::Fail,
                    1 => Reply::Calls("Let me look.", vec![("lookup", "{}")]),
                    2 => Reply::Calls("", vec![("capture_lead", r#"{"name":"A"}"#), ("end_call", "{}")]),
                    3 => Reply::Hang,
                    _ => Reply::Text("Sure thing, happy to help."),
                }]),
                18 => call.input(Input::Typed { identity: "caller".into(), text: "typed words".into() }),
                _ => call.input(Input::Muted { track: "TR_mic".into(), muted: true }),
            }
            // A deadline already due (a shortened silence) is met by the next tick.
            if call.core.next_deadline().is_some_and(|deadline| deadline <= call.core.now) {
                call.input(Input::Tick);
            }
            if let Some(deadline) = call.core.next_deadline() {
                assert!(deadline > call.core.now, "round {round} step {step}: a deadline never met: {:?}", call.core);
            }
            if call.hung_up.is_some() {
                break;
            }
        }
        call.input(Input::Stop(EndReason::CallerLeft));
        call.wait(3_000);
        assert!(call.hung_up.is_some(), "round {round}: a stopped call hangs up");
        check_pairings(&call, round);
    }
}

/// Each segment is finished or abandoned at most once after it started; each job is started
/// once and cancelled at most once; each tool is called once and cancelled at most once.
fn check_pairings(call: &Call, round: usize) {
    let mut segments: HashMap<u64, u32> = HashMap::new();
    let mut jobs: HashMap<u64, u32> = HashMap::new();
    let mut tools = HashSet::new();
    let mut cancelled_tools = HashSet::new();
    let mut hang_ups = 0;
    for output in call.outputs() {
        assert_eq!(hang_ups, 0, "round {round}: {output:?} after the hang-up");
        match output {
            Output::StartTranscription { segment, .. } => assert!(segments.insert(*segment, 0).is_none()),
            Output::Transcribe { segment, .. } => {
                assert_eq!(segments.get(segment), Some(&0), "round {round}: audio for a closed segment")
            }
            Output::FinishTranscription { segment } | Output::AbandonTranscription { segment } => {
                let closes = segments.get_mut(segment).expect("a started segment");
                *closes += 1;
                assert!(*closes <= 2, "round {round}: segment {segment} closed {closes} times");
            }
            Output::StartJob { job, .. } => assert!(jobs.insert(*job, 0).is_none()),
            Output::CancelJob { job } => {
                let cancels = jobs.get_mut(job).expect("a started job");
                *cancels += 1;
                assert_eq!(*cancels, 1, "round {round}: job {job} cancelled twice");
            }
            Output::CallTool { tool, .. } => assert!(tools.insert(*tool)),
            Output::CancelTool { tool } => {
                assert!(tools.contains(tool) && cancelled_tools.insert(*tool), "round {round}: tool {tool}");
            }
            Output::HangUp(_) => hang_ups += 1,
            _ => {}
        }
    }
    assert_eq!(hang_ups, 1);
}
