//! Server-assigned ids in LiveKit's shape: a type prefix and random characters.

use rand::Rng;
use rand::distr::Alphanumeric;

pub fn sid(prefix: &str) -> String {
    let suffix: String = rand::rng().sample_iter(&Alphanumeric).take(12).map(char::from).collect();
    format!("{prefix}{suffix}")
}
