//! What an outgoing request's failure says, for logs and readable results.

/// The error and its causes (reqwest's own message is only "error sending request"), without the
/// URL, which may carry credentials.
pub(crate) fn causes(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
