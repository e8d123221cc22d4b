use super::ipc::{ipc_base64, wire_type};
use super::render::write_json_string;
use super::*;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;

use arrow::array::{
    BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, ListArray, NullArray, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Fields, Int32Type as I32, Schema};

fn limits(chunk_bytes: usize) -> ResultLimits {
    ResultLimits {
        chunk_bytes,
        row_limit: None,
        byte_limit: None,
        inline_cap: INLINE_LIMIT_BYTES,
    }
}

fn manifest_json(result: &ResultSet) -> Value {
    serde_json::from_str(result.manifest()).unwrap()
}

fn chunk_json(result: &ResultSet, index: usize) -> Option<Value> {
    result
        .chunk(index)
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
}

fn int_batch(from: i64, to: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(from..to))],
    )
    .unwrap()
}

#[test]
fn type_names_follow_databricks() {
    let golden = [
        (DataType::Int8, "BYTE", "TINYINT"),
        (DataType::Int16, "SHORT", "SMALLINT"),
        (DataType::Int32, "INT", "INT"),
        (DataType::Int64, "LONG", "BIGINT"),
        (DataType::Float32, "FLOAT", "FLOAT"),
        (DataType::Float64, "DOUBLE", "DOUBLE"),
        (DataType::Decimal128(15, 2), "DECIMAL", "DECIMAL(15,2)"),
        (DataType::Utf8, "STRING", "STRING"),
        (DataType::LargeUtf8, "STRING", "STRING"),
        (DataType::Utf8View, "STRING", "STRING"),
        (DataType::Boolean, "BOOLEAN", "BOOLEAN"),
        (DataType::Date32, "DATE", "DATE"),
        (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            "TIMESTAMP",
            "TIMESTAMP",
        ),
        (DataType::Binary, "BINARY", "BINARY"),
        (
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            "ARRAY",
            "ARRAY<INT>",
        ),
        (
            DataType::Struct(Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ])),
            "STRUCT",
            "STRUCT<a: BIGINT, b: STRING>",
        ),
        (DataType::Null, "NULL", "VOID"),
        (
            DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            "INTERVAL",
            "INTERVAL",
        ),
    ];
    for (data_type, name, text) in golden {
        let (n, t, _, _) = databricks_type(&data_type);
        assert_eq!((n, t.as_str()), (name, text), "{data_type}");
    }
    assert_eq!(databricks_type(&DataType::Decimal128(15, 2)).2, 15);
    assert_eq!(databricks_type(&DataType::Decimal128(15, 2)).3, 2);
}

#[test]
fn values_are_formatted_as_databricks_does() {
    let cases: Vec<(ArrayRef, Vec<Option<&str>>)> = vec![
        (
            Arc::new(Int8Array::from(vec![Some(-3), None])),
            vec![Some("-3"), None],
        ),
        (Arc::new(Int16Array::from(vec![300])), vec![Some("300")]),
        (Arc::new(Int32Array::from(vec![1])), vec![Some("1")]),
        (
            Arc::new(Int64Array::from(vec![9_007_199_254_740_993])),
            vec![Some("9007199254740993")],
        ),
        (
            Arc::new(
                Decimal128Array::from(vec![150, -5, 0])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            vec![Some("1.50"), Some("-0.05"), Some("0.00")],
        ),
        (
            Arc::new(Float64Array::from(vec![
                1.0,
                0.1,
                1.5e20,
                2.5e-5,
                f64::NAN,
                -0.0,
            ])),
            vec![
                Some("1.0"),
                Some("0.1"),
                Some("1.5E20"),
                Some("2.5E-5"),
                Some("NaN"),
                Some("-0.0"),
            ],
        ),
        (
            Arc::new(Float32Array::from(vec![0.1f32])),
            vec![Some("0.1")],
        ),
        (
            Arc::new(BooleanArray::from(vec![true, false])),
            vec![Some("true"), Some("false")],
        ),
        (
            Arc::new(Date32Array::from(vec![19_753, 0, -1])),
            vec![Some("2024-01-31"), Some("1970-01-01"), Some("1969-12-31")],
        ),
        (
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_706_695_200_000_000, 1_500])
                    .with_timezone("UTC"),
            ),
            vec![
                Some("2024-01-31T10:00:00.000Z"),
                Some("1970-01-01T00:00:00.001500Z"),
            ],
        ),
        (
            Arc::new(StringArray::from(vec![Some("a\"b"), None])),
            vec![Some("a\"b"), None],
        ),
        (Arc::new(NullArray::new(1)), vec![None]),
    ];
    for (array, expected) in cases {
        let got: Vec<Option<String>> = (0..array.len())
            .map(|i| format_value(array.as_ref(), i))
            .collect();
        let expected: Vec<Option<String>> =
            expected.into_iter().map(|e| e.map(str::to_owned)).collect();
        assert_eq!(got, expected, "{}", array.data_type());
    }
}

#[test]
fn nested_values_are_json_text() {
    let list =
        ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1), None, Some(3)]), None]);
    assert_eq!(format_value(&list, 0).as_deref(), Some("[1,null,3]"));
    assert_eq!(format_value(&list, 1), None);
    let s = StructArray::from(vec![
        (
            Arc::new(Field::new("z", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("a", DataType::Float64, true)),
            Arc::new(Float64Array::from(vec![2.0])) as ArrayRef,
        ),
    ]);
    assert_eq!(format_value(&s, 0).as_deref(), Some(r#"{"z":"x","a":2.0}"#));
}

#[test]
fn manifest_golden() {
    let mut builder = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::JsonArray,
        limits(1 << 20),
        "s1",
    );
    builder.push(&int_batch(1, 3)).unwrap();
    let result = builder.finish().unwrap();
    assert_eq!(
        manifest_json(&result),
        json!({
            "format": "JSON_ARRAY",
            "schema": {"column_count": 1, "columns": [
                {"name": "n", "position": 0, "type_name": "LONG", "type_text": "BIGINT",
                 "type_precision": 0, "type_scale": 0}
            ]},
            "total_chunk_count": 1,
            "total_row_count": 2,
            "chunks": [{"chunk_index": 0, "row_offset": 0, "row_count": 2}],
            "truncated": false
        })
    );
    assert_eq!(
        chunk_json(&result, 0).unwrap(),
        json!({"chunk_index": 0, "row_offset": 0, "row_count": 2, "data_array": [["1"], ["2"]]})
    );
    assert_eq!(chunk_json(&result, 1), None);
}

#[test]
fn rows_are_split_into_chunks_of_about_the_configured_size() {
    // Each row `["12345"]` is about 10 bytes; 40 bytes hold 4 rows.
    let mut builder = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::JsonArray,
        limits(40),
        "abc",
    );
    builder.push(&int_batch(10_000, 10_005)).unwrap();
    builder.push(&int_batch(10_005, 10_010)).unwrap();
    let result = builder.finish().unwrap();
    assert_eq!(result.total_row_count, 10);
    let counts: Vec<(u64, u64)> = result
        .chunks
        .iter()
        .map(|c| (c.row_offset, c.row_count))
        .collect();
    assert_eq!(counts, vec![(0, 4), (4, 4), (8, 2)]);
    let first = chunk_json(&result, 0).unwrap();
    assert_eq!(first["next_chunk_index"], 1);
    assert_eq!(
        first["next_chunk_internal_link"],
        "/api/2.0/sql/statements/abc/result/chunks/1"
    );
    let last = chunk_json(&result, 2).unwrap();
    assert!(last.get("next_chunk_index").is_none());
    assert!(last.get("next_chunk_internal_link").is_none());
    assert_eq!(last["data_array"], json!([["10008"], ["10009"]]));
}

#[test]
fn row_limit_truncates_only_when_rows_were_cut() {
    let build = |row_limit: u64, batches: &[(i64, i64)]| {
        let mut b = ResultBuilder::new(
            int_batch(0, 0).schema(),
            ResultFormat::JsonArray,
            ResultLimits {
                row_limit: Some(row_limit),
                ..limits(1 << 20)
            },
            "s",
        );
        let mut wanted = true;
        for (from, to) in batches {
            if !wanted {
                break;
            }
            wanted = b.push(&int_batch(*from, *to)).unwrap();
        }
        b.finish().unwrap()
    };
    let cut = build(3, &[(0, 10)]);
    assert_eq!((cut.total_row_count, cut.truncated), (3, true));
    let exact = build(3, &[(0, 3)]);
    assert_eq!((exact.total_row_count, exact.truncated), (3, false));
    let across = build(3, &[(0, 3), (3, 4)]);
    assert_eq!((across.total_row_count, across.truncated), (3, true));
}

#[test]
fn byte_limit_truncates_and_the_inline_cap_fails() {
    let mut b = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::JsonArray,
        ResultLimits {
            byte_limit: Some(25),
            ..limits(1 << 20)
        },
        "s",
    );
    assert!(!b.push(&int_batch(10_000, 10_100)).unwrap());
    let result = b.finish().unwrap();
    assert_eq!((result.total_row_count, result.truncated), (2, true));

    let mut b = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::JsonArray,
        ResultLimits {
            inline_cap: 100,
            ..limits(1 << 20)
        },
        "s",
    );
    let err = b.push(&int_batch(10_000, 10_100)).unwrap_err();
    assert!(err.message.contains("row_limit"), "{}", err.message);
}

#[test]
fn arrow_stream_sends_views_as_plain_types_without_their_whole_buffers() {
    use arrow::array::StringViewArray;
    // 10,000 values longer than a view's inline 12 bytes, so they live in data buffers.
    let values: Vec<String> = (0..10_000)
        .map(|i| format!("a long enough value {i:05}"))
        .collect();
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringViewArray::from_iter_values(values.iter()))],
    )
    .unwrap();
    let encoded = ipc_base64(&schema, &[batch.slice(100, 3)]).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .unwrap();
    assert!(bytes.len() < 4096, "{} bytes for three rows", bytes.len());
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    assert_eq!(reader.schema().field(0).data_type(), &DataType::Utf8);
    let rows: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let got = rows[0].column(0).as_string::<i32>();
    assert_eq!(
        got.iter().flatten().collect::<Vec<_>>(),
        values[100..103]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}

#[test]
fn nested_views_are_sent_as_plain_types_too() {
    let item = Arc::new(Field::new("item", DataType::Utf8View, true));
    let listed = DataType::List(item.clone());
    let structured = DataType::Struct(Fields::from(vec![
        Field::new("l", listed.clone(), true),
        Field::new("b", DataType::BinaryView, true),
    ]));
    let DataType::Struct(fields) = wire_type(&structured) else {
        panic!("a struct stays a struct");
    };
    assert_eq!(
        fields[0].data_type(),
        &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
    );
    assert_eq!(fields[1].data_type(), &DataType::Binary);
    // And the cast the encoder makes exists for it.
    let values = arrow::array::StringViewArray::from(vec![Some("a long enough string"), None]);
    let list = ListArray::new(
        item,
        arrow::buffer::OffsetBuffer::from_lengths([2]),
        Arc::new(values),
        None,
    );
    let cast = arrow::compute::cast(&list, &wire_type(&listed)).unwrap();
    assert_eq!(cast.data_type(), &wire_type(&listed));
}

#[test]
fn arrow_stream_chunks_decode_to_the_same_rows() {
    let mut b = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::ArrowStream,
        limits(40),
        "s",
    );
    b.push(&int_batch(10_000, 10_006)).unwrap();
    b.push(&int_batch(10_006, 10_010)).unwrap();
    let result = b.finish().unwrap();
    assert_eq!(manifest_json(&result)["format"], "ARROW_STREAM");
    let mut all = Vec::new();
    for (i, chunk) in result.chunks.iter().enumerate() {
        let data = chunk_json(&result, i).unwrap();
        assert!(data.get("data_array").is_none());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data["attachment"].as_str().unwrap())
            .unwrap();
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let mut rows = 0;
        for batch in reader {
            let batch = batch.unwrap();
            rows += batch.num_rows() as u64;
            all.extend(
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert_eq!(rows, chunk.row_count, "chunk {i}");
    }
    assert_eq!(all, (10_000..10_010).collect::<Vec<i64>>());
}

#[test]
fn manifest_types_agree_with_describe_for_every_scalar_type() {
    use crate::engine::databricks_type_name;
    let scalars = [
        DataType::Null,
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float16,
        DataType::Float32,
        DataType::Float64,
        DataType::Decimal128(38, 10),
        DataType::Decimal256(20, 0),
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Binary,
        DataType::BinaryView,
        DataType::FixedSizeBinary(4),
        DataType::Date32,
        DataType::Date64,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Timestamp(TimeUnit::Nanosecond, None),
        DataType::Duration(TimeUnit::Second),
        DataType::Time64(TimeUnit::Microsecond),
    ];
    for data_type in scalars {
        let (_, text, _, _) = databricks_type(&data_type);
        assert_eq!(
            text,
            databricks_type_name(&data_type).to_ascii_uppercase(),
            "{data_type}"
        );
    }
    assert_eq!(
        databricks_type(&DataType::UInt64),
        ("DECIMAL", "DECIMAL(20,0)".to_owned(), 20, 0)
    );
    assert_eq!(
        databricks_type(&DataType::UInt32),
        ("LONG", "BIGINT".to_owned(), 0, 0)
    );
}

/// A statement's `UInt64` column: DESCRIBE calls it `decimal(20,0)`, and so must the manifest,
/// or clients read its values into a 64-bit signed integer and overflow.
#[tokio::test]
async fn an_unsigned_bigint_is_decimal_20_0_in_the_manifest() {
    let ctx = datafusion::prelude::SessionContext::new();
    let batches = ctx
        .sql("SELECT arrow_cast(18446744073709551615, 'UInt64') AS n")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut builder = ResultBuilder::new(
        batches[0].schema(),
        ResultFormat::JsonArray,
        limits(1 << 20),
        "s",
    );
    for batch in &batches {
        builder.push(batch).unwrap();
    }
    let result = builder.finish().unwrap();
    let column = &manifest_json(&result)["schema"]["columns"][0];
    assert_eq!(column["type_name"], "DECIMAL", "{column}");
    assert_eq!(column["type_text"], "DECIMAL(20,0)", "{column}");
    assert_eq!(
        (
            column["type_precision"].as_u64(),
            column["type_scale"].as_i64()
        ),
        (Some(20), Some(0))
    );
    assert_eq!(
        chunk_json(&result, 0).unwrap()["data_array"],
        json!([["18446744073709551615"]])
    );
}

#[test]
fn chunks_are_stored_as_their_json_bytes() {
    let mut builder = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::JsonArray,
        limits(40),
        "st-1",
    );
    builder.push(&int_batch(10_000, 10_006)).unwrap();
    let result = builder.finish().unwrap();
    let first: bytes::Bytes = result.chunk(0).unwrap();
    assert_eq!(
        std::str::from_utf8(&first).unwrap(),
        r#"{"chunk_index":0,"row_offset":0,"row_count":4,"data_array":[["10000"],["10001"],["10002"],["10003"]],"next_chunk_index":1,"next_chunk_internal_link":"/api/2.0/sql/statements/st-1/result/chunks/1"}"#
    );
    assert_eq!(
        std::str::from_utf8(&result.chunk(1).unwrap()).unwrap(),
        r#"{"chunk_index":1,"row_offset":4,"row_count":2,"data_array":[["10004"],["10005"]]}"#
    );
    // Served as stored: the same bytes, not a copy rendered again.
    assert_eq!(result.chunk(0).unwrap().as_ptr(), first.as_ptr());
    let empty = ResultBuilder::new(
        int_batch(0, 0).schema(),
        ResultFormat::JsonArray,
        limits(40),
        "e",
    )
    .finish()
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&empty.chunk(0).unwrap()).unwrap(),
        r#"{"chunk_index":0,"row_offset":0,"row_count":0,"data_array":[]}"#
    );
    assert!(result.retained_bytes() > first.len() as u64);
}

#[test]
fn nasty_strings_render_as_valid_json() {
    let nasty = [
        "",
        "\"",
        "\\",
        "\\\"",
        "a\nb\r\tc",
        "\u{0}\u{1}\u{1f}\u{7f}",
        "\u{2028}\u{2029}",
        "</script>",
        "😀 ünïcödé",
        "{\"not\": \"json\"}",
        "null",
    ];
    for text in nasty {
        let mut out = Vec::new();
        write_json_string(&mut out, text);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, text);
    }
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let values: Vec<Option<&str>> = nasty.iter().copied().map(Some).chain([None]).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(values.clone()))],
    )
    .unwrap();
    let mut builder = ResultBuilder::new(schema, ResultFormat::JsonArray, limits(16), "n\"x");
    builder.push(&batch).unwrap();
    let result = builder.finish().unwrap();
    let mut got: Vec<Option<String>> = Vec::new();
    for i in 0..result.chunks.len() {
        let data = chunk_json(&result, i).unwrap();
        for row in data["data_array"].as_array().unwrap() {
            got.push(row[0].as_str().map(str::to_owned));
        }
    }
    let expected: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_owned)).collect();
    assert_eq!(got, expected);
}
