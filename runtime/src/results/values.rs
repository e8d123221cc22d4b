//! Values as `JSON_ARRAY` carries them: strings formatted as Databricks formats them, and
//! nested values (arrays, structs, maps) as JSON text.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use base64::Engine as _;
use std::fmt::Write as _;

/// Java's `Double.toString`, which Databricks uses: shortest round-trip digits, at least one
/// fractional digit, scientific notation outside [1e-3, 1e7).
pub fn format_double(value: f64) -> String {
    java_decimal(value, value)
}

/// Java's `Float.toString`.
pub fn format_float(value: f32) -> String {
    java_decimal(value, f64::from(value))
}

/// Java's `toString` rule for both widths: `value` prints its own shortest round-trip digits
/// (an `f32` widened first would print the widening's noise); `as_f64` picks the notation.
fn java_decimal<T: std::fmt::Display + std::fmt::LowerExp>(value: T, as_f64: f64) -> String {
    if as_f64.is_nan() {
        return "NaN".into();
    }
    if as_f64.is_infinite() {
        return if as_f64 > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into();
    }
    let magnitude = as_f64.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// ISO-8601 in UTC with milliseconds (`2024-01-31T10:00:00.000Z`), microseconds when the value
/// has them.
pub fn format_timestamp(value: i64, unit: TimeUnit) -> String {
    let nanos_per_unit: i128 = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let total = i128::from(value) * nanos_per_unit;
    let secs = total.div_euclid(1_000_000_000);
    let nanos = total.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400) as i64;
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let fraction = if nanos % 1_000_000 == 0 {
        format!("{:03}", nanos / 1_000_000)
    } else {
        format!("{:06}", nanos / 1_000)
    };
    format!("{}T{h:02}:{mi:02}:{s:02}.{fraction}Z", format_date(days))
}

/// One value as `JSON_ARRAY` carries it: a string, or `None` for SQL NULL.
pub fn format_value(array: &dyn Array, row: usize) -> Option<String> {
    if is_null(array, row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float16 => format_float(array.as_primitive::<Float16Type>().value(row).to_f32()),
        DataType::Float32 => format_float(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => format_double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal32(_, _) => array.as_primitive::<Decimal32Type>().value_as_string(row),
        DataType::Decimal64(_, _) => array.as_primitive::<Decimal64Type>().value_as_string(row),
        DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().value_as_string(row),
        DataType::Decimal256(_, _) => array.as_primitive::<Decimal256Type>().value_as_string(row),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
        DataType::Utf8View => array.as_string_view().value(row).to_owned(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Date32 => format_date(i64::from(array.as_primitive::<Date32Type>().value(row))),
        DataType::Date64 => format_date(
            array
                .as_primitive::<Date64Type>()
                .value(row)
                .div_euclid(86_400_000),
        ),
        DataType::Timestamp(unit, _) => format_timestamp(timestamp_value(array, row, *unit), *unit),
        DataType::Binary => base64(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => base64(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => base64(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => base64(array.as_fixed_size_binary().value(row)),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Struct(_)
        | DataType::Map(_, _) => {
            let mut out = String::new();
            write_json(&mut out, array, row);
            out
        }
        _ => display_value(array, row),
    })
}

/// `NullArray` keeps no validity buffer, so `is_null` alone says its values are present.
fn is_null(array: &dyn Array, row: usize) -> bool {
    array.is_null(row) || *array.data_type() == DataType::Null
}

fn timestamp_value(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

pub(super) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Arrow's own rendering, for the types Databricks has no special form for (intervals, times).
fn display_value(array: &dyn Array, row: usize) -> String {
    let options = arrow::util::display::FormatOptions::default();
    match arrow::util::display::ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => formatter.value(row).to_string(),
        Err(_) => String::new(),
    }
}

fn json_string(out: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// A nested value as JSON text (field order kept, which `serde_json::Map` would not).
fn write_json(out: &mut String, array: &dyn Array, row: usize) {
    if is_null(array, row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        DataType::List(_) => write_list(out, &array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => write_list(out, &array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => write_list(out, &array.as_fixed_size_list().value(row)),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, field.name());
                out.push(':');
                write_json(out, s.column(i).as_ref(), row);
            }
            out.push('}');
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let entries = map.value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                let key = format_value(entries.column(0).as_ref(), i).unwrap_or_default();
                json_string(out, &key);
                out.push(':');
                write_json(out, entries.column(1).as_ref(), i);
            }
            out.push('}');
        }
        DataType::Boolean => {
            let _ = write!(out, "{}", array.as_boolean().value(row));
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => {
            out.push_str(&format_value(array, row).unwrap_or_default());
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let text = format_value(array, row).unwrap_or_default();
            // JSON has no NaN or Infinity: those travel as strings.
            if text.chars().any(|c| c.is_ascii_digit()) {
                out.push_str(&text);
            } else {
                json_string(out, &text);
            }
        }
        _ => json_string(out, &format_value(array, row).unwrap_or_default()),
    }
}

fn write_list(out: &mut String, values: &ArrayRef) {
    out.push('[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        write_json(out, values.as_ref(), i);
    }
    out.push(']');
}
