//! Request fields that Databricks accepts in more than one JSON form.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// An integer sent as a JSON number or as a string of one (`5` or `"5"`), kept as its text;
/// the field's own check parses it and names the field when it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntegerText(pub(crate) String);

impl<'de> Deserialize<'de> for IntegerText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarVisitor {
                expecting: "an integer or a string of one",
                bools: false,
            })
            .map(IntegerText)
    }
}

/// A scalar sent as a string, a number or a boolean, as its text (`"1"`, `1`, `true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScalarText(pub(crate) String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarVisitor {
                expecting: "a string",
                bools: true,
            })
            .map(ScalarText)
    }
}

struct ScalarVisitor {
    expecting: &'static str,
    bools: bool,
}

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        // As JSON writes it (`1.0`, not Rust's `1`).
        Ok(serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        if self.bools {
            Ok(v.to_string())
        } else {
            Err(E::invalid_type(de::Unexpected::Bool(v), &self))
        }
    }
}

/// `true` only for JSON `true`; anything else (a string, a number) is `false`, as a flag that
/// only ever narrows a response may be.
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(serde_json::Value::deserialize(deserializer)?.as_bool() == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_of_them() {
        let parse = |v: serde_json::Value| serde_json::from_value::<IntegerText>(v);
        assert_eq!(parse(serde_json::json!(5)).unwrap().0, "5");
        assert_eq!(parse(serde_json::json!("-7")).unwrap().0, "-7");
        assert_eq!(parse(serde_json::json!(1.5)).unwrap().0, "1.5");
        assert!(parse(serde_json::json!(true)).is_err());
        assert!(parse(serde_json::json!([1])).is_err());
        let scalar = |v: serde_json::Value| serde_json::from_value::<ScalarText>(v);
        assert_eq!(scalar(serde_json::json!(1.0)).unwrap().0, "1.0");
        assert_eq!(scalar(serde_json::json!(false)).unwrap().0, "false");
        assert!(scalar(serde_json::json!({"a": 1})).is_err());
    }
}
