//! Checking tokens as LiveKit does: a join before the WebSocket upgrade (failures are plain HTTP
//! answers, 401 or 400, with a reason, also served by `/rtc/validate`), an agent worker's
//! connection, and the grants each server API call needs.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use livekit_api::access_token::{AccessTokenError, Claims, TokenVerifier};

use crate::config::Secret;

/// A refused join: the HTTP status and the reason a client can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into() }
    }
}

/// The token from `Authorization: Bearer` (which wins, as in LiveKit) or `access_token`.
pub fn token<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Result<&'a str, Refusal> {
    if let Some(header) = headers.get("authorization") {
        let value = header.to_str().unwrap_or_default();
        return value.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
            Refusal::new(StatusCode::UNAUTHORIZED, "the authorization header must be `Bearer <token>`")
        });
    }
    query.get("access_token").map(String::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no access token: send `Authorization: Bearer <token>` or `?access_token=`",
        )
    })
}

/// Verifies signature, key, expiry (60 s leeway) and returns the claims.
pub fn verify(token: &str, api_key: &str, api_secret: &Secret) -> Result<Claims, Refusal> {
    let unauthorized = |reason: &str| Refusal::new(StatusCode::UNAUTHORIZED, reason);
    let unverified = Claims::from_unverified(token).map_err(|_| unauthorized("the token is not a valid JWT"))?;
    if unverified.iss != api_key {
        return Err(unauthorized("the token was issued for an unknown API key"));
    }
    TokenVerifier::with_api_key(api_key, api_secret.expose()).verify(token).map_err(|error| match error {
        AccessTokenError::Encoding(e) => match e.kind() {
            ErrorKind::ExpiredSignature => unauthorized("the token has expired"),
            ErrorKind::ImmatureSignature => unauthorized("the token is not valid yet"),
            ErrorKind::InvalidSignature => unauthorized("the token's signature is invalid (wrong API secret?)"),
            ErrorKind::MissingRequiredClaim(claim) => unauthorized(&format!("the token lacks the `{claim}` claim")),
            _ => unauthorized("the token is invalid"),
        },
        _ => unauthorized("the token is invalid"),
    })
}

/// The claims a room join needs: `video.roomJoin`, a room and an identity.
pub fn check_join(claims: &Claims) -> Result<(), Refusal> {
    if !claims.video.room_join {
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "permission denied: the token lacks the roomJoin grant"));
    }
    if claims.video.room.is_empty() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "the token names no room"));
    }
    if claims.sub.is_empty() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "the token names no participant identity"));
    }
    Ok(())
}

/// The claims an agent worker connection needs: `video.agent`.
pub fn check_agent(claims: &Claims) -> Result<(), Refusal> {
    if claims.video.agent {
        Ok(())
    } else {
        Err(Refusal::new(StatusCode::UNAUTHORIZED, "permission denied: the token lacks the agent grant"))
    }
}

/// What a server API call needs, as LiveKit's `Ensure*Permission` checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiGrant<'a> {
    /// `video.roomList` (ListRooms).
    List,
    /// `video.roomCreate` (DeleteRoom, as in LiveKit).
    Create,
    /// `video.roomAdmin` for this very room (participants and agent dispatch).
    Admin { room: &'a str },
}

/// Whether `claims` (none when the request carried no token) allow the call.
pub fn check_api(claims: Option<&Claims>, needs: ApiGrant<'_>) -> Result<(), Refusal> {
    let denied = |why: &str| Err(Refusal::new(StatusCode::UNAUTHORIZED, format!("permissions denied: {why}")));
    let Some(video) = claims.map(|c| &c.video) else {
        return denied("no access token; send `Authorization: Bearer <token>`");
    };
    match needs {
        ApiGrant::List if !video.room_list => denied("the token lacks the roomList grant"),
        ApiGrant::Create if !video.room_create => denied("the token lacks the roomCreate grant"),
        ApiGrant::Admin { .. } if !video.room_admin => denied("the token lacks the roomAdmin grant"),
        ApiGrant::Admin { room } if video.room != room => {
            denied("the token's roomAdmin grant is for another room (its `room` must name the room called)")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use livekit_api::access_token::{AccessToken, VideoGrants};

    use super::*;

    fn secret() -> Secret {
        Secret::new("secret")
    }

    fn token_for(grants: VideoGrants, identity: &str, key: &str, secret: &str, ttl: Duration) -> String {
        AccessToken::with_api_key(key, secret)
            .with_identity(identity)
            .with_grants(grants)
            .with_ttl(ttl)
            .to_jwt()
            .expect("signs")
    }

    fn join_grants() -> VideoGrants {
        VideoGrants { room_join: true, room: "r".into(), ..VideoGrants::default() }
    }

    #[test]
    fn a_valid_token_passes() {
        let jwt = token_for(join_grants(), "alice", "devkey", "secret", Duration::from_secs(60));
        let claims = verify(&jwt, "devkey", &secret()).expect("valid");
        assert!(check_join(&claims).is_ok());
        assert!(check_agent(&claims).is_err(), "a participant token is not a worker token");
    }

    #[test]
    fn each_bad_token_says_why() {
        let wrong_secret = token_for(join_grants(), "a", "devkey", "other", Duration::from_secs(60));
        assert!(verify(&wrong_secret, "devkey", &secret()).unwrap_err().reason.contains("signature"));
        let wrong_key = token_for(join_grants(), "a", "otherkey", "secret", Duration::from_secs(60));
        assert!(verify(&wrong_key, "devkey", &secret()).unwrap_err().reason.contains("unknown API key"));
        assert!(verify("not.a.jwt", "devkey", &secret()).unwrap_err().reason.contains("not a valid JWT"));
        let no_join = token_for(
            VideoGrants { room: "r".into(), ..VideoGrants::default() },
            "a",
            "devkey",
            "secret",
            Duration::from_secs(60),
        );
        let claims = verify(&no_join, "devkey", &secret()).expect("valid signature");
        assert_eq!(check_join(&claims).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn expired_tokens_are_refused_beyond_the_leeway() {
        let mut claims =
            Claims::from_unverified(&token_for(join_grants(), "a", "devkey", "secret", Duration::from_secs(60)))
                .expect("claims");
        claims.exp = claims.nbf.saturating_sub(3600);
        claims.nbf = claims.exp.saturating_sub(60);
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .expect("signs");
        assert_eq!(verify(&jwt, "devkey", &secret()).unwrap_err().reason, "the token has expired");
    }

    #[test]
    fn server_api_grants_follow_livekit() {
        let claims = |grants: VideoGrants| {
            let jwt = token_for(grants, "", "devkey", "secret", Duration::from_secs(60));
            verify(&jwt, "devkey", &secret()).expect("valid")
        };
        let list = claims(VideoGrants { room_list: true, ..VideoGrants::default() });
        let create = claims(VideoGrants { room_create: true, ..VideoGrants::default() });
        let admin = claims(VideoGrants { room_admin: true, room: "r".into(), ..VideoGrants::default() });
        let room = |room| ApiGrant::Admin { room };
        assert!(check_api(Some(&list), ApiGrant::List).is_ok());
        assert!(check_api(Some(&create), ApiGrant::Create).is_ok());
        assert!(check_api(Some(&admin), room("r")).is_ok());

        assert!(check_api(Some(&admin), ApiGrant::List).unwrap_err().reason.contains("roomList"));
        assert!(check_api(Some(&list), ApiGrant::Create).unwrap_err().reason.contains("roomCreate"));
        assert!(check_api(Some(&create), room("r")).unwrap_err().reason.contains("roomAdmin grant"));
        assert!(check_api(Some(&admin), room("other")).unwrap_err().reason.contains("another room"));
        let refused = check_api(None, ApiGrant::List).unwrap_err();
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(refused.reason.starts_with("permissions denied: no access token"), "{}", refused.reason);
    }

    #[test]
    fn the_header_wins_and_must_say_bearer() {
        let mut headers = HeaderMap::new();
        let query: HashMap<String, String> = [("access_token".to_owned(), "from-query".to_owned())].into();
        assert_eq!(token(&headers, &query), Ok("from-query"));
        headers.insert("authorization", "Bearer from-header".parse().expect("valid header"));
        assert_eq!(token(&headers, &query), Ok("from-header"));
        headers.insert("authorization", "from-header".parse().expect("valid header"));
        assert_eq!(token(&headers, &query).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert!(token(&HeaderMap::new(), &HashMap::new()).is_err());
    }
}
