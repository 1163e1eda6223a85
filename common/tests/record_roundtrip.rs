//! Property tests: any record survives being written and read back, and fields the reader does
//! not know come back untouched and in their order.

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Map, Value};
use wt_common::record::jsonl::{parse_line, Input};
use wt_common::{ErrorInfo, Record};

fn odd_text() -> impl Strategy<Value = String> {
    // Unicode of every plane, quotes, backslashes, newlines, NUL and other controls.
    prop_oneof![any::<String>(), "[a-z0-9 \"\\\\\n\t\u{0}\u{7f}é任😀/.-]{0,24}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        odd_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const CORE: &[&str] =
    &["v", "name", "index", "repo", "path", "branch", "base", "base_commit", "head", "created", "removed", "error"];

fn record() -> impl Strategy<Value = Record> {
    let extra = prop::collection::vec(("[a-z_]{1,10}", json_value()), 0..5)
        .prop_map(|kv| kv.into_iter().filter(|(k, _)| !CORE.contains(&k.as_str())).collect::<Map<_, _>>());
    let error = prop::option::of((odd_text(), odd_text()).prop_map(|(code, message)| ErrorInfo {
        tool: "wt-test".into(),
        code,
        message,
    }));
    (
        (odd_text(), prop::option::of(any::<u32>()), prop::option::of(odd_text()), prop::option::of(odd_text())),
        (prop::option::of(odd_text()), prop::option::of("[0-9a-f]{40}"), prop::option::of(any::<bool>())),
        extra,
        error,
    )
        .prop_map(|((name, index, repo, path), (branch, head, created), extra, error)| Record {
            name,
            index,
            repo: repo.map(PathBuf::from),
            path: path.map(PathBuf::from),
            branch,
            head: head.clone(),
            base_commit: head,
            created,
            extra,
            error,
            ..Record::default()
        })
}

proptest! {
    #[test]
    fn a_record_survives_a_round_trip(rec in record()) {
        let line = rec.to_json();
        prop_assert!(!line.contains('\n'), "one line: {line}");
        let back = Record::from_json(&line).unwrap();
        prop_assert_eq!(&back, &rec);
        // And through the line classifier the reader uses.
        match parse_line(&line) {
            Some(Ok(Input::Record(r))) => prop_assert_eq!(*r, rec),
            other => prop_assert!(false, "not read as a record: {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_keep_their_order(keys in prop::collection::vec("[a-z]{3,8}", 1..8)) {
        let mut obj = Map::new();
        obj.insert("v".into(), 1.into());
        obj.insert("name".into(), "a".into());
        for (i, k) in keys.iter().enumerate() {
            if !CORE.contains(&k.as_str()) {
                obj.insert(k.clone(), i.into());
            }
        }
        let text = Value::Object(obj.clone()).to_string();
        let out: Map<String, Value> = serde_json::from_str(&Record::from_json(&text).unwrap().to_json()).unwrap();
        prop_assert_eq!(out.keys().collect::<Vec<_>>(), obj.keys().collect::<Vec<_>>());
    }
}

#[test]
fn core_fields_are_written_in_protocol_order() {
    let mut rec = Record::named("agent-2");
    rec.set_key("zeta", Value::from(1));
    rec.index = Some(2);
    rec.path = Some("/w/a".into());
    rec.created = Some(true);
    assert_eq!(rec.to_json(), r#"{"v":1,"name":"agent-2","index":2,"path":"/w/a","created":true,"zeta":1}"#);
}
