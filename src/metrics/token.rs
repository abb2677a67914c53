//! The token server's metrics: tokens issued, requests refused by the rate limits, and every
//! request by route and status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Which rate limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// TOKEN_RATE_LIMIT_PER_MIN, on `/api/token`.
    Token,
    /// API_RATE_LIMIT_PER_MIN, on the other `/api/` routes.
    Api,
}

impl RateLimit {
    const ALL: [RateLimit; 2] = [Self::Token, Self::Api];

    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Api => "api",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// The token server's metrics; cheap to clone, every clone counts into the same series.
#[derive(Debug, Clone, Default)]
pub struct TokenMetrics {
    tokens: Counter,
    refused: Family<LimitLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
}

impl TokenMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        for limit in RateLimit::ALL {
            let _ = self.refused.get_or_create(&LimitLabels { limit: limit.as_str() });
        }
        registry.register("tokens_issued", "LiveKit tokens issued to callers", self.tokens.clone());
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit: token (TOKEN_RATE_LIMIT_PER_MIN) or api (API_RATE_LIMIT_PER_MIN)",
            self.refused.clone(),
        );
        registry.register(
            "http_requests",
            "Requests answered, by route (its template, such as /api/config/{agent_id}; `static` for the page's files, `other` for unknown paths) and status",
            self.requests.clone(),
        );
    }

    /// A caller got a token.
    pub fn token_issued(&self) {
        self.tokens.inc();
    }

    /// `limit` refused a request with 429.
    pub fn rate_limited(&self, limit: RateLimit) {
        self.refused.get_or_create(&LimitLabels { limit: limit.as_str() }).inc();
    }

    /// A request answered; `route` must be a route template or a fixed word, never a raw path.
    pub fn request(&self, route: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route: route.to_owned(), status }).inc();
    }
}
