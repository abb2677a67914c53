//! What the agent says while a slow tool runs, in the call's language, when the profile gives
//! no filler of its own (or the caller chose another language than the profile's).

use crate::profiles::AgentProfile;

/// Short and gender-neutral: the voice may be either.
const FILLERS: &[(&str, &str)] = &[
    ("en-IN", "One moment, let me check that."),
    ("hi-IN", "एक मिनट, अभी देखकर बताते हैं।"),
    ("bn-IN", "এক মিনিট, দেখে বলছি।"),
    ("ta-IN", "ஒரு நிமிடம், பார்த்துச் சொல்கிறேன்."),
    ("te-IN", "ఒక్క నిమిషం, చూసి చెబుతాను."),
    ("mr-IN", "एक मिनिट, जरा तपासून पाहूया."),
    ("gu-IN", "એક મિનિટ, જોઈને કહું છું."),
    ("kn-IN", "ಒಂದು ನಿಮಿಷ, ನೋಡಿ ಹೇಳುತ್ತೇನೆ."),
    ("ml-IN", "ഒരു നിമിഷം, നോക്കി പറയാം."),
    ("pa-IN", "ਇੱਕ ਮਿੰਟ, ਦੇਖ ਕੇ ਦੱਸਦੇ ਹਾਂ।"),
    ("od-IN", "ଗୋଟିଏ ମିନିଟ୍, ଦେଖି କହୁଛି।"),
];

/// The profile's filler when the call speaks the profile's language, else the language's own.
pub fn filler(profile: &AgentProfile, language: &str) -> String {
    match &profile.filler {
        Some(filler) if language == profile.language => filler.clone(),
        _ => FILLERS.iter().find(|(code, _)| *code == language).map_or(FILLERS[0].1, |(_, filler)| filler).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ProfileDoc;
    use crate::providers::catalog;

    fn profile(filler: &str) -> AgentProfile {
        let doc: ProfileDoc =
            toml::from_str(&format!("system_prompt = \"x\"\nlanguage = \"hi-IN\"\nvoice = \"priya\"\n{filler}"))
                .expect("parses");
        doc.resolve("a", &crate::profiles::tests::defaults()).expect("valid")
    }

    #[test]
    fn the_filler_is_in_the_calls_language() {
        let own = profile("filler = \"ज़रा रुकिए।\"");
        assert_eq!(filler(&own, "hi-IN"), "ज़रा रुकिए।");
        assert_eq!(filler(&own, "ta-IN"), "ஒரு நிமிடம், பார்த்துச் சொல்கிறேன்.", "not the profile's Hindi");
        assert_eq!(filler(&profile(""), "hi-IN"), "एक मिनट, अभी देखकर बताते हैं।");
        for code in catalog::language_codes().split(", ") {
            assert!(FILLERS.iter().any(|(known, _)| *known == code), "no filler for {code}");
        }
    }
}
