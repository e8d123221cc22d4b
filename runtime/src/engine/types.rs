//! Databricks type names ⇄ Arrow types: parsing the names users write (column definitions,
//! parameter types) and naming stored Arrow types the way `DESCRIBE` shows them.

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use std::sync::Arc;

/// The Databricks name of an Arrow type (`bigint`, `decimal(15,2)`, `string`, `date`, ...).
pub fn databricks_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Null => "void".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => {
            format!("array<{}>", databricks_type_name(f.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), databricks_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                databricks_type_name(kv[0].data_type()),
                databricks_type_name(kv[1].data_type())
            ),
            _ => "map".into(),
        },
        DataType::Dictionary(_, value) => databricks_type_name(value),
        DataType::RunEndEncoded(_, value) => databricks_type_name(value.data_type()),
        other => other.to_string().to_lowercase(),
    }
}

/// Parses a Databricks type name (`INT`, `DECIMAL(10,2)`, `ARRAY<STRING>`,
/// `STRUCT<a: INT, b: STRING>`, `MAP<STRING, INT>`, ...).
pub(crate) fn parse_type_name(text: &str) -> Result<DataType, String> {
    let mut parser = TypeParser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let parsed = parser.data_type()?;
    parser.skip_ws();
    if parser.pos != parser.chars.len() {
        return Err(format!("unexpected text after the type in `{text}`"));
    }
    Ok(parsed)
}

struct TypeParser {
    chars: Vec<char>,
    pos: usize,
}

impl TypeParser {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> String {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn eat(&mut self, ch: char) -> bool {
        self.skip_ws();
        if self.chars.get(self.pos) == Some(&ch) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, ch: char) -> Result<(), String> {
        if self.eat(ch) {
            Ok(())
        } else {
            Err(format!("expected `{ch}` in type"))
        }
    }

    fn number(&mut self) -> Result<u32, String> {
        let word = self.word();
        word.parse::<u32>()
            .map_err(|_| format!("expected a number in type, found `{word}`"))
    }

    fn data_type(&mut self) -> Result<DataType, String> {
        let name = self.word().to_ascii_uppercase();
        let simple = match name.as_str() {
            "" => return Err("expected a type name".into()),
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" | "BYTE" => DataType::Int8,
            "SMALLINT" | "SHORT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" | "LONG" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => DataType::Float64,
            "DATE" => DataType::Date32,
            "TIMESTAMP" | "TIMESTAMP_LTZ" => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            "TIMESTAMP_NTZ" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "BINARY" => DataType::Binary,
            "VOID" => DataType::Null,
            "STRING" | "TEXT" => DataType::Utf8,
            "VARCHAR" | "CHAR" => {
                // The length is a constraint Databricks checks on write; the data is a string.
                if self.eat('(') {
                    self.number()?;
                    self.expect(')')?;
                }
                DataType::Utf8
            }
            "DECIMAL" | "DEC" | "NUMERIC" => self.decimal()?,
            "ARRAY" => {
                self.expect('<')?;
                let element = self.data_type()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("element", element, true)))
            }
            "MAP" => self.map()?,
            "STRUCT" => self.struct_type()?,
            other => return Err(format!("unsupported data type `{other}`")),
        };
        Ok(simple)
    }

    /// `DECIMAL`, `DECIMAL(p)` or `DECIMAL(p, s)`, after the name.
    fn decimal(&mut self) -> Result<DataType, String> {
        let (mut precision, mut scale) = (10u32, 0u32);
        if self.eat('(') {
            precision = self.number()?;
            if self.eat(',') {
                scale = self.number()?;
            }
            self.expect(')')?;
        }
        if precision == 0 || precision > 38 || scale > precision {
            return Err(format!("invalid decimal({precision},{scale})"));
        }
        let p = u8::try_from(precision).map_err(|_| "decimal precision".to_owned())?;
        let s = i8::try_from(scale).map_err(|_| "decimal scale".to_owned())?;
        Ok(DataType::Decimal128(p, s))
    }

    /// `<key, value>` after `MAP`.
    fn map(&mut self) -> Result<DataType, String> {
        self.expect('<')?;
        let key = self.data_type()?;
        self.expect(',')?;
        let value = self.data_type()?;
        self.expect('>')?;
        let entries = Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        );
        Ok(DataType::Map(Arc::new(entries), false))
    }

    /// `<name: TYPE, ...>` after `STRUCT`.
    fn struct_type(&mut self) -> Result<DataType, String> {
        self.expect('<')?;
        let mut fields = Vec::new();
        if !self.eat('>') {
            loop {
                let name = self.word();
                if name.is_empty() {
                    return Err("expected a field name in struct".into());
                }
                self.expect(':')?;
                let ty = self.data_type()?;
                fields.push(Field::new(name, ty, true));
                if self.eat('>') {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(DataType::Struct(Fields::from(fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_common_types() {
        for (text, name) in [
            ("BIGINT", "bigint"),
            ("int", "int"),
            ("Decimal(15, 2)", "decimal(15,2)"),
            ("STRING", "string"),
            ("varchar(20)", "string"),
            ("DATE", "date"),
            ("TIMESTAMP", "timestamp"),
            ("TIMESTAMP_NTZ", "timestamp_ntz"),
            ("double", "double"),
            ("boolean", "boolean"),
            ("ARRAY<INT>", "array<int>"),
            ("MAP<STRING, BIGINT>", "map<string,bigint>"),
            ("STRUCT<a: INT, b: STRING>", "struct<a:int,b:string>"),
        ] {
            let ty = parse_type_name(text).unwrap_or_else(|e| unreachable!("{text}: {e}"));
            assert_eq!(databricks_type_name(&ty), name, "{text}");
        }
    }

    #[test]
    fn arrow_names_of_the_samples() {
        assert_eq!(databricks_type_name(&DataType::Utf8View), "string");
        assert_eq!(
            databricks_type_name(&DataType::Decimal128(15, 2)),
            "decimal(15,2)"
        );
        assert_eq!(databricks_type_name(&DataType::Date32), "date");
        assert_eq!(databricks_type_name(&DataType::Int64), "bigint");
    }

    #[test]
    fn bad_types_are_refused() {
        assert!(parse_type_name("WIDGET").is_err());
        assert!(parse_type_name("DECIMAL(40,2)").is_err());
        assert!(parse_type_name("INT INT").is_err());
    }
}
