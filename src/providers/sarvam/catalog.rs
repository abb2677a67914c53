//! Sarvam's text-to-speech voices, per model, as its official SDK (`sarvamai` 0.1.39) lists
//! them: bulbul:v2's seven, bulbul:v3's 37, and bulbul:v4-flash's personas, named
//! `<name>_<language>_<style>`. A voice of one model is refused by the others, so no two
//! lists share a name, and a voice names its model.

use crate::providers::catalog::{Gender, Voice};

pub(super) const V2: &str = "bulbul:v2";
pub(super) const V3: &str = "bulbul:v3";
pub(super) const V4_FLASH: &str = "bulbul:v4-flash";
/// Oldest first; the default is bulbul:v3, the API's own default (v4-flash is recommended by
/// Sarvam but its personas each speak one or two languages, so it is a choice to make).
pub(super) const MODELS: &[&str] = &[V2, V3, V4_FLASH];
pub(super) const DEFAULT_MODEL: &str = V3;

const V2_VOICES: &[&str] = &["anushka", "manisha", "vidya", "arya", "abhilash", "karun", "hitesh"];

/// The SDK's order, its default (`shubh`) first.
const V3_VOICES: &[&str] = &[
    "shubh", "aditya", "ritu", "priya", "neha", "rahul", "pooja", "rohan", "simran", "kavya", "amit", "dev", "ishita",
    "shreya", "ratan", "varun", "manan", "sumit", "roopa", "kabir", "aayan", "ashutosh", "advait", "anand", "tanya",
    "tarun", "sunny", "mani", "gokul", "vijay", "shruti", "suhani", "mohit", "kavitha", "rehan", "soham", "rupali",
];

const V4_VOICES: &[&str] = &[
    "arnab_bn_conversation",
    "roopa_bn_conversational",
    "bimal_bn_suspense",
    "aditi_en_stories",
    "aparna_en_companion",
    "aparna_en_edtech",
    "ashwin_en_sports",
    "ashwin_en_sports_energetic",
    "chandrika_en_stories",
    "dev_en_recovery",
    "dev_en_conversational",
    "deven_en_conversation",
    "ishita_en_customer",
    "ishita_en_medical",
    "ishita_en_numbers",
    "ishita_en_social",
    "ishita_en_stories",
    "kalpit_en_edtech",
    "nachiket_en_ads",
    "neha_en_customer",
    "neha_en_latenight",
    "nupur_en_kids",
    "ojas_en_social",
    "ritu_en_edtech",
    "ritu_en_latenight",
    "ritu_en_medical",
    "ritu_en_reels",
    "rohan_en_recovery",
    "roopa_en_conversational",
    "rustom_en_suspense",
    "sanchita_en_companion",
    "sanchita_en_insurance",
    "sanchita_en_recovery",
    "sanchita_en_market",
    "sanchita_en_social",
    "shabana_en_edtech",
    "shalini_en_companion",
    "shalini_en_customer",
    "shubh_en_narration",
    "shubh_en_numbers",
    "shubh_en_ads",
    "shubh_en_recovery",
    "shubh_en_audiobook",
    "shubh_en_narration_gentle",
    "shubh_en_sports",
    "simran_en_narration",
    "simran_en_automobile",
    "simran_en_conversation",
    "simran_en_customer",
    "simran_en_edtech",
    "simran_en_edtech_bot",
    "simran_en_sales",
    "simran_en_recovery",
    "simran_en_ads",
    "simran_en_therapist",
    "sunny_en_social",
    "varun_en_ads",
    "varun_en_suspense",
    "zarina_en_conversation",
    "amelia_en_conversational",
    "sophia_en_conversational",
    "girish_en_documentary",
    "girish_en_devotional",
    "payal_en_edtech",
    "sarang_en_narration",
    "ishita_enhi_companion",
    "ishita_enhi_customer",
    "ishita_enhi_customer_expressive",
    "sanchita_enhi_companion",
    "shalini_enhi_companion",
    "shalini_enhi_customer",
    "shubh_enhi_companion",
    "shubh_enhi_ads",
    "shubh_enhi_banking",
    "simran_enhi_companion",
    "simran_enhi_customer",
    "simran_enhi_banking_expressive",
    "sunny_enhi_customer",
    "bhavik_gu_conversation",
    "pooja_gu_conversational",
    "pooja_gu_customer",
    "aayan_hi_conversational",
    "amit_hi_conversational",
    "ashutosh_hi_conversational",
    "kabir_hi_conversational",
    "kavya_hi_conversational",
    "manan_hi_conversational",
    "rahul_hi_conversational",
    "sumit_hi_conversational",
    "aditya_hi_conversational",
    "aditya_hi_sales",
    "anand_hi_documentary",
    "anand_hi_news",
    "aparna_hi_customer",
    "aparna_hi_kyc",
    "ashok_hi_character",
    "ashok_hi_news",
    "chhavi_hi_kids",
    "ishita_hi_ads",
    "ishita_hi_edtech",
    "ishita_hi_banking",
    "ishita_hi_ads_informal",
    "ishita_hi_devotional",
    "ishita_hi_numbers",
    "ishita_hi_social",
    "kunal_hi_kids",
    "mahesh_hi_documentary",
    "mani_hi_devotional",
    "mani_hi_conversational",
    "mohit_hi_conversational",
    "nachiket_hi_devotional",
    "priya_hi_recovery",
    "ratan_hi_latenight",
    "ratan_hi_customer_expressive",
    "ratan_hi_documentary",
    "ratan_hi_devotional",
    "ratan_hi_recovery",
    "ratan_hi_social",
    "ratan_hi_sports",
    "ratan_hi_latenight_warm",
    "rehan_hi_social",
    "ritu_hi_customer_utility",
    "ritu_hi_kids",
    "ritu_hi_conversation",
    "ritu_hi_customer",
    "ritu_hi_edtech",
    "ritu_hi_ads_formal",
    "ritu_hi_banking",
    "ritu_hi_ads_informal",
    "ritu_hi_insurance",
    "ritu_hi_edtech_bot",
    "ritu_hi_medical",
    "ritu_hi_sales",
    "ritu_hi_reels",
    "ritu_hi_social",
    "ritu_hi_customer_warm",
    "ritu_hi_social_lively",
    "roopa_hi_companion",
    "roopa_hi_narration",
    "roopa_hi_recovery",
    "roopa_hi_market",
    "roopa_hi_conversational",
    "sanchita_hi_assistant",
    "sanchita_hi_edtech",
    "sanchita_hi_banking",
    "sanchita_hi_feedback",
    "sanchita_hi_ads_formal",
    "sanchita_hi_ads_informal",
    "sanchita_hi_interview",
    "sanchita_hi_romantic",
    "sanchita_hi_market",
    "sanchita_hi_social",
    "sanchita_hi_kyc",
    "sarika_hi_conversation",
    "shalini_hi_companion",
    "shalini_hi_social",
    "shreya_hi_conversational",
    "shreya_hi_news",
    "shruti_hi_edtech",
    "shubh_hi_customer",
    "shubh_hi_ecomm",
    "shubh_hi_stories_mixed",
    "shubh_hi_devotional",
    "shubh_hi_ads",
    "shubh_hi_recovery",
    "shubh_hi_stories_dramatic",
    "simran_hi_assistant",
    "simran_hi_narration",
    "simran_hi_automobile",
    "simran_hi_conversation",
    "simran_hi_news_breaking",
    "simran_hi_social_energetic",
    "simran_hi_social_excited",
    "simran_hi_latenight",
    "simran_hi_news",
    "simran_hi_recovery",
    "simran_hi_sales",
    "suchitra_hi_ecomm",
    "suhani_hi_social",
    "sunny_hi_ads",
    "sunny_hi_reels",
    "tarun_hi_conversational",
    "tarun_hi_sales",
    "chaitra_hi_customer",
    "shilpa_hi_narration",
    "tanya_hi_narration",
    "aarti_hi_customer",
    "advait_hi_character",
    "aryaman_hi_ads",
    "chirag_hi_social",
    "girish_hi_devotional",
    "mukul_hi_ads",
    "mukul_hi_suspense",
    "suman_hi_companion",
    "vaibhav_hi_social",
    "vandana_hi_ecomm",
    "vipul_hi_social",
    "chaitra_kn_conversation",
    "chaitra_kn_narration",
    "chetan_kn_conversation",
    "suchitra_kn_narration",
    "ishita_mr_conversational",
    "mrunal_mr_narration",
    "neha_mr_narration",
    "nilesh_mr_conversation",
    "ritu_mr_insurance",
    "ritu_mr_narration",
    "rupali_mr_stories",
    "soham_mr_narration",
    "mukul_mr_stories",
    "anand_pa_conversation",
    "anand_pa_customer",
    "harpreet_pa_narration",
    "jaspal_pa_banking",
    "gokul_ta_narration",
    "aravind_ta_ads",
    "aravind_ta_suspense",
    "vijay_ta_narration",
    "kavitha_te_conversation",
    "kavitha_te_narration",
    "pooja_te_conversation",
    "tarun_te_narration",
];

/// Names (the first part of a persona's id) of female voices; the others are male.
const FEMALE: &[&str] = &[
    "aarti",
    "aditi",
    "amelia",
    "aparna",
    "chaitra",
    "chandrika",
    "chhavi",
    "harpreet",
    "ishita",
    "kavitha",
    "kavya",
    "mrunal",
    "neha",
    "nupur",
    "payal",
    "pooja",
    "priya",
    "ritu",
    "roopa",
    "rupali",
    "sanchita",
    "sarika",
    "shabana",
    "shalini",
    "shilpa",
    "shreya",
    "shruti",
    "simran",
    "sophia",
    "suchitra",
    "suhani",
    "suman",
    "tanya",
    "vandana",
    "zarina",
    "anushka",
    "manisha",
    "vidya",
    "arya",
];

/// What a v4-flash persona's language part stands for.
const PERSONA_LANGUAGES: &[(&str, &[&str])] = &[
    ("en", &["en-IN"]),
    ("enhi", &["en-IN", "hi-IN"]),
    ("hi", &["hi-IN"]),
    ("bn", &["bn-IN"]),
    ("gu", &["gu-IN"]),
    ("kn", &["kn-IN"]),
    ("mr", &["mr-IN"]),
    ("pa", &["pa-IN"]),
    ("ta", &["ta-IN"]),
    ("te", &["te-IN"]),
];

/// Every language bulbul:v2 and v3 speak, with every voice.
const ALL_LANGUAGES: &[&str] =
    &["hi-IN", "en-IN", "bn-IN", "ta-IN", "te-IN", "mr-IN", "gu-IN", "kn-IN", "ml-IN", "pa-IN", "od-IN"];

/// The model a voice belongs to.
pub(super) fn model_of(voice: &str) -> Option<&'static str> {
    if V2_VOICES.contains(&voice) {
        Some(V2)
    } else if V3_VOICES.contains(&voice) {
        Some(V3)
    } else if V4_VOICES.contains(&voice) {
        Some(V4_FLASH)
    } else {
        None
    }
}

/// The languages a model speaks: every one for v2 and v3; v4-flash's personas' own.
pub(super) fn languages(model: &str) -> Vec<&'static str> {
    match model {
        V4_FLASH => ALL_LANGUAGES.iter().copied().filter(|code| !personas(code).is_empty()).collect(),
        V2 | V3 => ALL_LANGUAGES.to_vec(),
        _ => Vec::new(),
    }
}

/// The voice ids of `model` for `language`, its default first.
pub(super) fn voice_ids(model: &str, language: &str) -> Vec<&'static str> {
    if !ALL_LANGUAGES.contains(&language) {
        return Vec::new();
    }
    match model {
        V2 => V2_VOICES.to_vec(),
        V3 => V3_VOICES.to_vec(),
        V4_FLASH => {
            let mut ids = personas(language);
            // The SDK's default persona first, where it speaks the language.
            if let Some(at) = ids.iter().position(|id| *id == "shubh_enhi_ads") {
                ids[..=at].rotate_right(1);
            }
            ids
        }
        _ => Vec::new(),
    }
}

pub(super) fn voices(model: &str, language: &str) -> Vec<Voice> {
    voice_ids(model, language).into_iter().map(voice).collect()
}

fn personas(language: &str) -> Vec<&'static str> {
    V4_VOICES
        .iter()
        .copied()
        .filter(|id| {
            let tag = id.split('_').nth(1).unwrap_or_default();
            PERSONA_LANGUAGES.iter().any(|(persona, codes)| *persona == tag && codes.contains(&language))
        })
        .collect()
}

/// `shubh` is "Shubh"; `shubh_hi_stories_mixed` is "Shubh (stories mixed)".
fn voice(id: &'static str) -> Voice {
    let mut parts = id.split('_');
    let base = parts.next().unwrap_or(id);
    let mut name: String = base.chars().take(1).flat_map(char::to_uppercase).chain(base.chars().skip(1)).collect();
    let style: Vec<&str> = parts.skip(1).collect();
    if !style.is_empty() {
        name = format!("{name} ({})", style.join(" "));
    }
    let gender = if FEMALE.contains(&base) { Gender::Female } else { Gender::Male };
    Voice::new(id, name, gender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_has_the_sdks_full_list_and_no_voice_is_shared() {
        assert_eq!(V3_VOICES.len(), 37);
        assert_eq!(V4_VOICES.len(), 222);
        let mut all: Vec<&str> = V2_VOICES.iter().chain(V3_VOICES).chain(V4_VOICES).copied().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
        assert_eq!(model_of("arya"), Some(V2));
        assert_eq!(model_of("kavitha"), Some(V3));
        assert_eq!(model_of("ritu_hi_banking"), Some(V4_FLASH));
        assert_eq!(model_of("Ritu"), None, "names are case-sensitive");
    }

    #[test]
    fn personas_speak_their_own_languages() {
        let hindi = voice_ids(V4_FLASH, "hi-IN");
        assert_eq!(hindi[0], "shubh_enhi_ads", "the SDK's default persona first");
        assert!(hindi.contains(&"ishita_enhi_companion") && hindi.contains(&"ritu_hi_kids"));
        assert!(!hindi.contains(&"gokul_ta_narration"));
        assert_eq!(
            voice_ids(V4_FLASH, "ta-IN"),
            ["gokul_ta_narration", "aravind_ta_ads", "aravind_ta_suspense", "vijay_ta_narration"]
        );
        assert!(voice_ids(V4_FLASH, "ml-IN").is_empty());
        assert!(!languages(V4_FLASH).contains(&"od-IN"));
        assert_eq!(languages(V3).len(), 11);
        assert_eq!(voice_ids(V3, "od-IN")[0], "shubh");
    }

    #[test]
    fn voices_read_well() {
        let v = voice("shubh_hi_stories_mixed");
        assert_eq!((v.name.as_str(), v.gender), ("Shubh (stories mixed)", Gender::Male));
        assert_eq!(voice("ritu").gender, Gender::Female);
    }
}
