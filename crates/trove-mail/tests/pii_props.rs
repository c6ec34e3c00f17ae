//! Properties of masking over generated text: planted values of every kind among random
//! words, digits and punctuation.

use proptest::prelude::*;
use trove_mail::pii::{Detector, List};

fn detector() -> Detector {
    Detector::new(
        &["enron.com".into()],
        &[List {
            name: "names".into(),
            terms: vec!["Jane Roe".into()],
            patterns: vec![r"\bCASE-\d{4}\b".into()],
        }],
    )
    .unwrap()
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("219-45-8873".to_string()),
        Just("4556 7375 8689 9855".to_string()),
        Just("DE89 3704 0044 0532 0130 00".to_string()),
        Just("Passport No. K7391046".to_string()),
        Just("password: hunter22".to_string()),
        Just("born on 04/12/1961".to_string()),
        Just("(713) 853-6794".to_string()),
        Just("1400 Smith Street".to_string()),
        Just("jane@gmail.com".to_string()),
        Just("Jane Roe".to_string()),
        Just("CASE-1234".to_string()),
        Just("[SSN REDACTED]".to_string()),
        "[a-zA-Z]{1,8}",
        "[0-9]{1,12}",
        "[ .,;:/#@()\n-]{1,3}",
        "[é中😀]{1,2}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..24).prop_map(|v| v.join(" "))
}

fn masked(d: &Detector, t: &str) -> String {
    trove_mail::pii::redact_text(d, t, |_| true).0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Redacting a redacted text changes nothing: no detector finds anything in a label
    /// or in what redaction leaves.
    #[test]
    fn redaction_is_idempotent(t in text()) {
        let d = detector();
        let once = masked(&d, &t);
        let twice = masked(&d, &once);
        prop_assert_eq!(&once, &twice);
    }

    /// Redaction only ever takes text away: with its labels removed, the output is never
    /// longer than the input, and every character left is in the input, in order.
    #[test]
    fn redaction_never_lengthens_the_visible_text(t in text()) {
        let d = detector();
        let out = masked(&d, &t);
        let visible = LABELS.replace_all(&out, "");
        let input = LABELS.replace_all(&t, "");
        prop_assert!(visible.len() <= input.len(), "{visible:?} longer than {input:?}");
        let mut rest = input.chars();
        for c in visible.chars() {
            prop_assert!(rest.any(|x| x == c), "{c:?} of {visible:?} not in {input:?} in order");
        }
    }
}

static LABELS: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"\[[A-Z_-]+ REDACTED\]").unwrap());
