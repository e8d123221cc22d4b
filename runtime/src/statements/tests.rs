use super::request::{parse_wait_timeout, ExecuteBody, ExecuteRequest};
use crate::engine::Parameter;
use crate::error::ServiceError;
use crate::results::ResultFormat;
use serde_json::{json, Value};
use std::time::Duration;

fn parse(v: Value) -> Result<ExecuteRequest, ServiceError> {
    crate::http::from_value::<ExecuteBody>(v)?.check()
}

#[test]
fn execute_defaults() {
    let r = parse(json!({"statement": "SELECT 1", "warehouse_id": "w"})).unwrap();
    assert_eq!(r.wait, Duration::from_secs(10));
    assert!(!r.cancel_on_timeout);
    assert_eq!(r.format, ResultFormat::JsonArray);
    assert_eq!((r.row_limit, r.byte_limit), (None, None));
    let r = parse(
        json!({"statement": "SELECT :a", "warehouse_id": "w", "wait_timeout": "0s",
        "on_wait_timeout": "CANCEL", "format": "ARROW_STREAM", "disposition": "INLINE",
        "row_limit": 5, "byte_limit": "100", "catalog": "main", "schema": "default",
        "parameters": [{"name": "a", "type": "INT", "value": "1"}, {"name": "b"}],
        "query_tags": [{"key": "k", "value": "v"}]}),
    )
    .unwrap();
    assert_eq!(r.wait, Duration::ZERO);
    assert!(r.cancel_on_timeout);
    assert_eq!(r.format, ResultFormat::ArrowStream);
    assert_eq!((r.row_limit, r.byte_limit), (Some(5), Some(100)));
    assert_eq!(
        r.parameters,
        vec![
            Parameter {
                name: "a".into(),
                value: Some("1".into()),
                type_name: Some("INT".into())
            },
            Parameter {
                name: "b".into(),
                value: None,
                type_name: None
            },
        ]
    );
}

#[test]
fn execute_refusals_name_the_field() {
    let cases = [
        (json!({"warehouse_id": "w"}), "`statement`"),
        (json!({"statement": "x"}), "`warehouse_id`"),
        (
            json!({"statement": "x", "warehouse_id": "w", "wait_timeout": "3s"}),
            "`wait_timeout`",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "wait_timeout": "51s"}),
            "`wait_timeout`",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "wait_timeout": "10"}),
            "`wait_timeout`",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "on_wait_timeout": "WAIT"}),
            "`on_wait_timeout`",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "disposition": "EXTERNAL_LINKS"}),
            "EXTERNAL_LINKS",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "format": "CSV"}),
            "CSV",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "row_limit": 0}),
            "`row_limit`",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "byte_limit": -1}),
            "`byte_limit`",
        ),
        (
            json!({"statement": "x", "warehouse_id": "w", "parameters": [{"value": "1"}]}),
            "name",
        ),
    ];
    for (body, needle) in cases {
        let err = parse(body.clone()).unwrap_err();
        assert!(
            matches!(err, ServiceError::InvalidParameter { .. }),
            "{body}: {err:?}"
        );
        assert!(err.message().contains(needle), "{body}: {}", err.message());
    }
    assert_eq!(parse_wait_timeout("5s").unwrap(), Duration::from_secs(5));
    assert_eq!(parse_wait_timeout("50s").unwrap(), Duration::from_secs(50));
}

#[test]
fn parameter_values_of_the_wrong_type_name_their_path() {
    let err = parse(json!({"statement": "x", "warehouse_id": "w",
        "parameters": [{"name": "a", "value": {"nested": 1}}]}))
    .unwrap_err();
    assert!(err.message().contains("`parameters[0].value`"), "{err:?}");
    let r = parse(json!({"statement": "x", "warehouse_id": "w",
        "parameters": [{"name": "a", "value": 1.5}, {"name": "b", "value": true}]}))
    .unwrap();
    let values: Vec<Option<&str>> = r.parameters.iter().map(|p| p.value.as_deref()).collect();
    assert_eq!(values, [Some("1.5"), Some("true")]);
}
