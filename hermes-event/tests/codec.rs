//! The event JSON against hermes' own output: golden files written by Python's
//! `json.dumps(event, indent=4)` with hermes' encoding of datetimes and bytes,
//! and a property test that every event survives a round trip.

use chrono::NaiveDate;
use hermes_event::{Category, Event, EventHead, EventType, Integer, Value, compact_json};
use proptest::prelude::*;

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn object(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn check(name: &str, event: &Event) {
    let expected = golden(name);
    assert_eq!(event.to_json(), expected, "to_json of {name}");
    assert_eq!(
        &Event::from_json(&expected).expect("golden parses"),
        event,
        "from_json of {name}"
    );
}

#[test]
fn added_event_with_every_kind_of_value() {
    let created = NaiveDate::from_ymd_opt(2024, 2, 29)
        .and_then(|d| d.and_hms_opt(23, 59, 7))
        .expect("valid date");
    let event = Event::new(
        Category::Base,
        EventType::Added,
        Some("SRVUsers".into()),
        Value::from(42),
        object(vec![
            ("id", Value::from(42)),
            ("login", Value::from("jdoe")),
            ("name", Value::from("José 😀 中")),
            ("created", Value::datetime(created)),
            ("photo", Value::Bytes(vec![0x00, 0x01, 0xff, 0x80])),
            ("empty", Value::Bytes(vec![])),
            ("ratio", Value::from(1e-7)),
            ("big", Value::from(1e16)),
            ("f", Value::from(1e15)),
            ("tags", Value::List(vec![])),
            ("meta", Value::empty_object()),
            ("path", Value::from("a/b\tc\n\"q\"\\")),
        ]),
    );
    check("added-user", &event);
}

#[test]
fn modified_event_with_composite_key_and_nested_diff() {
    let mut event = Event::new(
        Category::Base,
        EventType::Modified,
        Some("SRVGroupsMembers".into()),
        Value::List(vec![Value::from("admins"), Value::from(42)]),
        object(vec![
            (
                "added",
                object(vec![("mail", Value::from("x@example.com"))]),
            ),
            (
                "modified",
                object(vec![
                    (
                        "groups",
                        Value::List(vec![Value::from("a"), Value::from("b")]),
                    ),
                    (
                        "nested",
                        object(vec![(
                            "k",
                            Value::List(vec![
                                Value::from(1),
                                Value::from(2.5),
                                Value::Null,
                                Value::from(true),
                            ]),
                        )]),
                    ),
                ]),
            ),
            ("removed", object(vec![("phone", Value::Null)])),
        ]),
    );
    event.step = 3;
    event.is_partially_processed = true;
    check("modified-composite-key", &event);
}

#[test]
fn init_stop_event_with_null_type_and_key() {
    let event = Event::new(
        Category::Initsync,
        EventType::InitStop,
        None,
        Value::Null,
        Value::empty_object(),
    );
    check("init-stop", &event);
}

#[test]
fn compact_and_pretty_layouts_read_back_the_same() {
    let pretty = golden("modified-composite-key");
    let event = Event::from_json(&pretty).expect("golden parses");
    assert_eq!(
        Event::from_json(&event.to_json_compact()).expect("compact parses"),
        event
    );
    assert!(!event.to_json_compact().contains('\n'));
}

#[test]
fn bad_events_name_the_attribute_at_fault() {
    let cases = [
        (
            r#"{"evcategory": "other", "eventtype": "added", "objattrs": {}}"#,
            "evcategory",
        ),
        (
            r#"{"evcategory": "base", "eventtype": "renamed", "objattrs": {}}"#,
            "eventtype",
        ),
        (
            r#"{"evcategory": "base", "eventtype": "added"}"#,
            "objattrs: missing",
        ),
        (
            r#"{"evcategory": "base", "eventtype": "added", "objattrs": []}"#,
            "objattrs",
        ),
        (
            r#"{"evcategory": "base", "eventtype": "added", "objattrs": {}, "colour": 1}"#,
            "colour",
        ),
        (
            r#"{"evcategory": "base", "eventtype": "added", "objattrs": {}, "step": "x"}"#,
            "step",
        ),
        (r#"{"evcategory": "base""#, "invalid JSON"),
        ("[1, 2]", "JSON object"),
    ];
    for (text, expected) in cases {
        let error = Event::from_json(text).expect_err(text).to_string();
        assert!(
            error.contains(expected),
            "{text}: {error:?} should mention {expected:?}"
        );
    }
}

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}"
}

/// Any string except the two forms that hermes itself reads as something else.
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("hermes string forms", |s| {
        !s.starts_with("HermesDatetime(") && !s.starts_with("HermesBytes(")
    })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(|u| Value::Integer(Integer::from(u))),
        "-?[1-9][0-9]{19,40}".prop_map(|s| Value::Integer(s.parse().expect("digits"))),
        any::<f64>().prop_map(Value::Float),
        prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
            .prop_map(Value::Float),
        text().prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        (0i64..253_402_300_799).prop_map(|secs| {
            Value::Datetime(
                chrono::DateTime::from_timestamp(secs, 0)
                    .expect("in range")
                    .naive_utc(),
            )
        }),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((key(), inner), 0..6).prop_map(|entries| {
                // Python dicts have unique keys; keep the first of each.
                let mut seen = std::collections::HashSet::new();
                Value::Object(
                    entries
                        .into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    let category = prop_oneof![Just(Category::Base), Just(Category::Initsync)];
    let eventtype = prop_oneof![
        Just(EventType::Added),
        Just(EventType::Modified),
        Just(EventType::Removed),
        Just(EventType::Dataschema),
        Just(EventType::InitStart),
        Just(EventType::InitStop),
    ];
    let attrs = proptest::collection::vec((key(), value()), 0..8).prop_map(|entries| {
        let mut seen = std::collections::HashSet::new();
        Value::Object(
            entries
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect(),
        )
    });
    (
        category,
        eventtype,
        proptest::option::of(text()),
        value(),
        attrs,
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(|(c, t, objtype, objpkey, objattrs, step, partial)| Event {
            evcategory: c,
            eventtype: t,
            objtype,
            objpkey,
            objattrs,
            step,
            is_partially_processed: partial,
        })
}

proptest! {
    #[test]
    fn the_head_and_the_compact_text_come_without_parsing(event in event()) {
        let text = event.to_json();
        let head = EventHead::from_json(&text).expect("own output");
        // Compared as printed: a NaN is not equal to itself.
        prop_assert_eq!(
            format!("{:?}", (head.evcategory, head.eventtype, &head.objtype, &head.objpkey)),
            format!("{:?}", (event.evcategory, event.eventtype, &event.objtype, &event.objpkey))
        );
        prop_assert_eq!(compact_json(&text), event.to_json_compact());
    }

    #[test]
    fn from_json_inverts_to_json(event in event()) {
        let text = event.to_json();
        prop_assert!(text.is_ascii());
        // Compared as written: a NaN is not equal to itself, and the writer
        // gives every other value a text of its own.
        let parsed = Event::from_json(&text).expect("own output parses");
        prop_assert_eq!(parsed.to_json(), text.clone());
        let compact = Event::from_json(&event.to_json_compact()).expect("compact parses");
        prop_assert_eq!(compact.to_json(), text);
    }
}

#[test]
fn non_finite_floats_are_written_and_read_as_python_does() {
    let event = Event::new(
        Category::Base,
        EventType::Modified,
        Some("SRVUsers".into()),
        Value::from(7),
        object(vec![
            ("added", object(vec![("ratio", Value::Float(f64::NAN))])),
            (
                "modified",
                object(vec![
                    ("quota", Value::Float(f64::INFINITY)),
                    ("delta", Value::Float(f64::NEG_INFINITY)),
                    ("huge", Value::Float(f64::INFINITY)),
                    ("neg", Value::Float(f64::NEG_INFINITY)),
                ]),
            ),
            ("removed", Value::empty_object()),
        ]),
    );
    let expected = golden("modified-non-finite");
    assert_eq!(event.to_json(), expected);
    let parsed = Event::from_json(&expected).expect("hermes' text parses");
    assert_eq!(parsed.to_json(), expected, "and reads back the same");
    assert!(matches!(
        parsed.objattrs.get("added").and_then(|a| a.get("ratio")),
        Some(Value::Float(f)) if f.is_nan()
    ));
    // A number too large for a float is infinite, as in Python; the
    // tokens stay text inside strings, and are nothing else outside them.
    let huge = Event::from_json(
        r#"{"evcategory": "base", "eventtype": "added", "objattrs": {"x": 1e400, "y": -1e400, "s": "NaN -Infinity", "t": "\"Infinity"}}"#,
    )
    .expect("parses");
    assert_eq!(
        huge.to_json_compact(),
        r#"{"evcategory":"base","eventtype":"added","objtype":null,"objpkey":null,"objattrs":{"x":Infinity,"y":-Infinity,"s":"NaN -Infinity","t":"\"Infinity"},"step":0,"isPartiallyProcessed":false}"#
    );
    for bad in ["nan", "-NaN", "Infinityx", "+Infinity", "NaNa"] {
        let text = format!(
            r#"{{"evcategory": "base", "eventtype": "added", "objattrs": {{"x": {bad}}}}}"#
        );
        assert!(Event::from_json(&text).is_err(), "{bad}");
    }
    let head = EventHead::from_json(&expected).expect("the head reads past them");
    assert_eq!(head.eventtype, EventType::Modified);
}

#[test]
fn a_repeated_attribute_keeps_its_last_value_in_the_event_and_the_head() {
    let text = r#"{"evcategory": 3, "objtype": "", "eventtype": "added", "objtype": "SRVUsers", "evcategory": "base", "objattrs": [], "objattrs": {}}"#;
    let event = Event::from_json(text).expect("as Python reads it");
    let head = EventHead::from_json(text).expect("the same");
    assert_eq!(event.objtype.as_deref(), Some("SRVUsers"));
    assert_eq!(head.objtype.as_deref(), Some("SRVUsers"));
    assert_eq!(
        (head.evcategory, event.evcategory),
        (Category::Base, Category::Base)
    );
}

#[test]
fn the_head_reads_the_top_level_attributes_only() {
    let head = EventHead::from_json(
        r#"{"objattrs": {"eventtype": "added", "objtype": "x"}, "evcategory": "initsync", "eventtype": "init-start"}"#,
    )
    .expect("an event");
    assert_eq!(
        head,
        EventHead {
            evcategory: Category::Initsync,
            eventtype: EventType::InitStart,
            objtype: None,
            objpkey: Value::Null,
        }
    );
}

#[test]
fn the_head_checks_what_from_json_checks() {
    for bad in [
        r#"{"evcategory": "base", "eventtype": "added", "objattrs": []}"#,
        r#"{"evcategory": "base", "eventtype": "added"}"#,
        r#"{"evcategory": "other", "eventtype": "added", "objattrs": {}}"#,
        r#"{"evcategory": "base", "eventtype": "added", "objattrs": {}, "extra": 1}"#,
        r#"{"evcategory": "base", "eventtype": "added", "objattrs": {}, "step": 1.5}"#,
        r#"{"evcategory": "base", "eventtype": "added", "objattrs": {"a": }}"#,
        r#"{"evcategory": "base", "eventtype": "added", "objtype": 3, "objattrs": {}}"#,
    ] {
        assert!(EventHead::from_json(bad).is_err(), "{bad}");
        assert!(Event::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn compacting_keeps_strings_whole() {
    assert_eq!(
        compact_json("{\n    \"a b\": \"x \\\" y\\\\\",\n    \"c\": [1, 2.5e+16, {}]\n}"),
        r#"{"a b":"x \" y\\","c":[1,2.5e+16,{}]}"#
    );
}

#[test]
fn the_routing_fields_read_as_text() {
    let key = |objpkey| {
        Event::new(
            Category::Base,
            EventType::Removed,
            Some("T".into()),
            objpkey,
            Value::empty_object(),
        )
        .objpkey_text()
    };
    assert_eq!(key(Value::from(42)), Some("42".to_owned()));
    assert_eq!(
        key(Value::List(vec![Value::from("Beta"), Value::from(120)])),
        Some(r#"["Beta",120]"#.to_owned())
    );
    assert_eq!(key(Value::Null), None);
    assert_eq!(
        format!("{} {}", Category::Initsync, EventType::InitStart),
        "initsync init-start"
    );
}

#[test]
fn a_head_error_says_what_was_expected() {
    let error =
        EventHead::from_json(r#"{"evcategory": "base", "eventtype": "added", "objattrs": []}"#)
            .expect_err("objattrs is a list");
    assert!(error.to_string().contains("an object"), "{error}");
}

#[test]
fn an_unclosed_string_is_left_as_it_is() {
    assert_eq!(compact_json("[1, \"a b"), "[1,\"a b");
    assert_eq!(compact_json("\"a\\"), "\"a\\");
}
