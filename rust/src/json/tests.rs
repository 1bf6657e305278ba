//! The codec against an embedded interpreter: what it decodes it encodes back to the same
//! JSON, no input makes it panic, and it takes any depth and any integer.

use proptest::prelude::*;
use pyo3::prelude::*;
use serde_json::{Map, Number, Value};

use super::{decode, encode};

fn with_python<T>(work: impl FnOnce(Python<'_>) -> T) -> T {
    Python::initialize();
    Python::attach(work)
}

/// JSON values the encoder accepts: no NUL in strings, 64-bit integers, finite floats.
fn json_value() -> impl Strategy<Value = Value> {
    let text = "[^\u{0}]{0,12}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Value::Number(Number::from_f64(f).expect("finite"))),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((text, inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn what_is_decoded_encodes_back_to_the_same_json(value in json_value()) {
        let text = serde_json::to_vec(&value).unwrap();
        let again = with_python(|py| {
            let decoded = decode(py, &text).expect("valid JSON decodes");
            encode(&decoded).map_err(|e| e.describe("value"))
        });
        let again = again.expect("a decoded value encodes");
        let reparsed: Value = serde_json::from_slice(&again).unwrap();
        prop_assert_eq!(reparsed, value);
    }

    #[test]
    fn no_input_makes_the_decoder_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        with_python(|py| {
            let _ = decode(py, &bytes);
        });
    }

    #[test]
    fn no_near_json_input_makes_the_decoder_panic(text in "[\\[\\]{}\",:0-9eE.+\\-tnrufals \\\\u]{0,40}") {
        with_python(|py| {
            let _ = decode(py, text.as_bytes());
        });
    }
}

#[test]
fn any_depth_decodes() {
    let depth = 100_000;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    with_python(|py| {
        let mut value = decode(py, text.as_bytes()).expect("deep arrays decode");
        let mut levels = 1;
        while let Ok(first) = value.get_item(0) {
            value = first;
            levels += 1;
        }
        assert_eq!(levels, depth);
    });
}

#[test]
fn integers_of_any_size_stay_exact_and_huge_decimals_are_not_rounded() {
    with_python(|py| {
        let show = |text: &str| {
            let value = decode(py, text.as_bytes()).unwrap();
            let kind = value.get_type().name().unwrap().to_string();
            (kind, value.str().unwrap().to_string())
        };
        assert_eq!(
            show("18446744073709551616"),
            ("int".into(), "18446744073709551616".into())
        );
        assert_eq!(
            show("-9223372036854775809"),
            ("int".into(), "-9223372036854775809".into())
        );
        assert_eq!(show("1e400"), ("Decimal".into(), "1E+400".into()));
        assert_eq!(show("-1e-400"), ("Decimal".into(), "-1E-400".into()));
        assert_eq!(show("1.5"), ("float".into(), "1.5".into()));
        assert_eq!(show("0e-400"), ("float".into(), "0.0".into()));
    });
}

#[test]
fn lone_surrogates_survive_and_pairs_join() {
    with_python(|py| {
        let value = decode(py, br#""\ud800x\ud83d\ude00""#).unwrap();
        // The lone surrogate, 'x', and one astral character.
        assert_eq!(value.len().unwrap(), 3);
        let ord: u32 = py
            .import("builtins")
            .unwrap()
            .getattr("ord")
            .unwrap()
            .call1((value.get_item(0).unwrap(),))
            .unwrap()
            .extract()
            .unwrap();
        assert_eq!(ord, 0xD800);
    });
}

#[test]
fn malformed_documents_are_errors_with_a_position() {
    with_python(|py| {
        for bad in [
            &b"{\"a\":}"[..],
            b"[1,]",
            b"01",
            b"\"abc",
            b"{\"a\":1} x",
            b"",
            b"\"\\x\"",
        ] {
            let error = super::decode::decode_cached(py, bad, &mut super::KeyCache::default())
                .expect_err("malformed");
            assert!(error.offset <= bad.len(), "{error}");
        }
    });
}
