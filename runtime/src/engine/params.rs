//! Named parameters: `:name` in the statement becomes DataFusion's placeholder `$name`
//! (found with the SQL tokenizer, so text inside string literals, quoted identifiers and
//! comments is never touched), and each value is bound as a typed literal. User values never
//! become SQL text.

use super::context::Parameter;
use super::error::QueryError;
use super::error::{bad_request, bad_request_with_state, syntax};
use super::types::parse_type_name;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use std::collections::{BTreeSet, HashMap};

/// A statement with its parameters bound.
#[derive(Debug)]
pub(crate) struct Bound {
    /// The statement with `$name` where it said `:name`.
    pub(crate) sql: String,
    /// The names it uses.
    pub(crate) used: BTreeSet<String>,
    pub(crate) values: HashMap<String, ScalarValue>,
}

impl Bound {
    pub(crate) fn param_values(&self) -> ParamValues {
        ParamValues::from(self.values.clone())
    }
}

/// Tokenizes with positions (the dialect DataFusion parses with).
pub(crate) fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, QueryError> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| syntax(format!("[PARSE_SYNTAX_ERROR] {e}")))
}

/// Byte offsets of the start of each line, to turn the tokenizer's (line, column in chars)
/// into positions in the text.
pub(crate) struct Offsets<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    pub(crate) fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Offsets { sql, line_starts }
    }

    pub(crate) fn at(&self, location: Location) -> usize {
        let line = usize::try_from(location.line).unwrap_or(0);
        let Some(&start) = line.checked_sub(1).and_then(|l| self.line_starts.get(l)) else {
            return self.sql.len();
        };
        let column = usize::try_from(location.column)
            .unwrap_or(1)
            .saturating_sub(1);
        self.sql[start..]
            .char_indices()
            .nth(column)
            .map_or(self.sql.len(), |(i, _)| start + i)
    }
}

pub(crate) fn bind(sql: &str, parameters: &[Parameter]) -> Result<Bound, QueryError> {
    let tokens = tokenize(sql)?;
    let offsets = Offsets::new(sql);
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut used = BTreeSet::new();
    for pair in tokens.windows(2) {
        let [colon, word] = pair else { continue };
        let (Token::Colon, Token::Word(w)) = (&colon.token, &word.token) else {
            continue;
        };
        if w.quote_style.is_some() {
            continue;
        }
        let start = offsets.at(colon.span.start);
        let end = offsets.at(word.span.end);
        if start < copied || end < start {
            continue;
        }
        out.push_str(&sql[copied..start]);
        out.push('$');
        out.push_str(&w.value);
        copied = end;
        used.insert(w.value.clone());
    }
    out.push_str(&sql[copied..]);

    let mut values = HashMap::new();
    for name in &used {
        let parameter = parameters.iter().find(|p| &p.name == name).ok_or_else(|| {
            bad_request_with_state(
                format!(
                    "[UNBOUND_SQL_PARAMETER] Found the unbound parameter: `{name}`. Please \
                     supply a value for it in `parameters`."
                ),
                "42P02",
            )
        })?;
        values.insert(name.clone(), value_of(parameter)?);
    }
    Ok(Bound {
        sql: out,
        used,
        values,
    })
}

/// The typed literal a parameter stands for.
pub(crate) fn value_of(parameter: &Parameter) -> Result<ScalarValue, QueryError> {
    let type_name = parameter.type_name.as_deref().unwrap_or("STRING");
    let data_type = parse_type_name(type_name).map_err(|e| {
        bad_request(format!(
            "parameter `{}`: type `{type_name}`: {e}",
            parameter.name
        ))
    })?;
    let Some(text) = &parameter.value else {
        return ScalarValue::try_from(&data_type)
            .map_err(|e| bad_request(format!("parameter `{}`: {e}", parameter.name)));
    };
    let text_value = ScalarValue::Utf8(Some(text.clone()));
    if data_type == DataType::Utf8 {
        return Ok(text_value);
    }
    let trimmed = ScalarValue::Utf8(Some(text.trim().to_owned()));
    trimmed.cast_to(&data_type).map_err(|_| {
        bad_request_with_state(
            format!(
                "parameter `{}`: '{text}' is not a valid {type_name}",
                parameter.name
            ),
            "22018",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, value: Option<&str>, ty: Option<&str>) -> Parameter {
        Parameter {
            name: name.into(),
            value: value.map(Into::into),
            type_name: ty.map(Into::into),
        }
    }

    #[test]
    fn replaces_only_real_parameters() {
        let sql = "SELECT ':a', `:a`, x::int, :a -- :b\n, /* :c */ :limit\nFROM t WHERE s = :a";
        let bound = bind(
            sql,
            &[p("a", Some("1"), Some("INT")), p("limit", None, None)],
        )
        .unwrap();
        assert_eq!(
            bound.sql,
            "SELECT ':a', `:a`, x::int, $a -- :b\n, /* :c */ $limit\nFROM t WHERE s = $a"
        );
        assert_eq!(bound.values["a"], ScalarValue::Int32(Some(1)));
        assert_eq!(bound.values["limit"], ScalarValue::Utf8(None));
    }

    #[test]
    fn multibyte_text_keeps_offsets_right() {
        let sql = "SELECT 'é€', :x";
        let bound = bind(sql, &[p("x", Some("v"), None)]).unwrap();
        assert_eq!(bound.sql, "SELECT 'é€', $x");
    }

    #[test]
    fn missing_and_malformed_parameters_are_bad_requests() {
        let e = bind("SELECT :missing", &[]).unwrap_err();
        assert_eq!(e.error_code(), "BAD_REQUEST");
        assert!(e.to_string().contains("`missing`"), "{e}");
        let e = bind("SELECT :n", &[p("n", Some("abc"), Some("INT"))]).unwrap_err();
        assert!(e.to_string().contains("'abc'"), "{e}");
    }

    #[test]
    fn typed_values() {
        let v = |value: &str, ty: &str| value_of(&p("x", Some(value), Some(ty))).unwrap();
        assert_eq!(v("42", "BIGINT"), ScalarValue::Int64(Some(42)));
        assert_eq!(
            v("1.50", "DECIMAL(10,2)"),
            ScalarValue::Decimal128(Some(150), 10, 2)
        );
        assert_eq!(v("true", "BOOLEAN"), ScalarValue::Boolean(Some(true)));
        assert_eq!(v("1970-01-02", "DATE"), ScalarValue::Date32(Some(1)));
        assert_eq!(v("it's", "STRING"), ScalarValue::Utf8(Some("it's".into())));
    }
}
