//! A profile's `[[tools]]` as [`WebhookTool`]s: n8n paths joined to N8N_BASE_URL, every request
//! signed with N8N_WEBHOOK_SECRET when it is set.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::agent::{Tool, WebhookTool, WebhookToolConfig};
use crate::config::{Secret, redact_url};
use crate::profiles::{AgentProfile, Webhook};
use crate::providers::llm::ToolSpec;

/// Where a profile's tools send their requests, and how they sign them.
#[derive(Debug, Clone, Default)]
pub struct ToolEndpoints {
    /// N8N_BASE_URL: tools declared with a path (`/webhook/…`) are under it.
    pub n8n_base_url: Option<Url>,
    /// N8N_WEBHOOK_SECRET, the one that signs call records.
    pub secret: Option<Secret>,
}

/// The profile's tools, ready for the agent. A tool whose webhook is a path while N8N_BASE_URL
/// is unset cannot be reached: it is left out (the model is not offered it) with an error in the
/// log, and the call goes on without it.
pub fn profile_tools(profile: &AgentProfile, endpoints: &ToolEndpoints, http: &reqwest::Client) -> Vec<Arc<dyn Tool>> {
    let mut tools: Vec<Arc<dyn Tool>> = Vec::with_capacity(profile.tools.len());
    for tool in &profile.tools {
        let url = match tool.webhook() {
            Some(Webhook::Url(url)) => url,
            Some(Webhook::N8nPath(path)) => match &endpoints.n8n_base_url {
                Some(base) => match Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/'))) {
                    Ok(url) => url,
                    Err(e) => {
                        tracing::error!(agent = %profile.id, tool = %tool.name, base = %redact_url(base.as_str()), "the tool's webhook is not a URL under N8N_BASE_URL ({e}); the tool is left out");
                        continue;
                    }
                },
                None => {
                    tracing::error!(agent = %profile.id, tool = %tool.name, "the tool's webhook is a path under N8N_BASE_URL, which is not set; the tool is left out");
                    continue;
                }
            },
            // Refused when the profile was read.
            None => continue,
        };
        let config = WebhookToolConfig {
            spec: ToolSpec {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            },
            url,
            timeout: Duration::from_millis(u64::from(tool.timeout_ms)),
            side_effects: tool.side_effects,
            filler: tool.filler.clone(),
            secret: endpoints.secret.clone(),
        };
        tools.push(Arc::new(WebhookTool::new(config, http.clone())));
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ProfileDoc;

    fn profile() -> AgentProfile {
        let doc: ProfileDoc = toml::from_str(
            r#"
            system_prompt = "x"
            [[tools]]
            name = "check_availability"
            description = "Free slots of a day."
            webhook = "/webhook/clinic-availability"
            [[tools]]
            name = "crm_lookup"
            description = "The caller's orders."
            webhook = "https://crm.example.com/hooks/orders"
            side_effects = true
            timeout_ms = 2500
            filler = "Let me look that up."
            "#,
        )
        .expect("parses");
        doc.resolve("a", &crate::profiles::tests::defaults()).expect("valid")
    }

    #[test]
    fn paths_need_n8n_and_urls_stand_alone() {
        let http = reqwest::Client::new();
        let without_n8n = profile_tools(&profile(), &ToolEndpoints::default(), &http);
        let names: Vec<String> = without_n8n.iter().map(|tool| tool.spec().name).collect();
        assert_eq!(names, ["crm_lookup"], "the n8n path cannot be reached without N8N_BASE_URL");
        assert!(without_n8n[0].side_effects());
        assert_eq!(without_n8n[0].filler().as_deref(), Some("Let me look that up."));

        let endpoints = ToolEndpoints { n8n_base_url: Url::parse("https://n8n.example.com/").ok(), secret: None };
        let with_n8n = profile_tools(&profile(), &endpoints, &http);
        assert_eq!(with_n8n.len(), 2);
        assert_eq!(with_n8n[0].spec().name, "check_availability");
        assert!(!with_n8n[0].side_effects());
    }
}
