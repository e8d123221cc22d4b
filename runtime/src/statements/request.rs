//! `ExecuteStatementRequest`, as sent and as checked.

use crate::engine::Parameter;
use crate::error::ServiceError;
use crate::results::ResultFormat;
use crate::text::{IntegerText, ScalarText};
use serde::Deserialize;
use std::time::Duration;

/// The request body as sent; [`ExecuteBody::check`] makes it an [`ExecuteRequest`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a JSON object")]
pub(crate) struct ExecuteBody {
    statement: Option<String>,
    warehouse_id: Option<String>,
    wait_timeout: Option<String>,
    on_wait_timeout: Option<String>,
    disposition: Option<String>,
    format: Option<String>,
    parameters: Option<Vec<ParameterBody>>,
    row_limit: Option<IntegerText>,
    byte_limit: Option<IntegerText>,
    catalog: Option<String>,
    schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "an object")]
struct ParameterBody {
    name: Option<String>,
    value: Option<ScalarText>,
    #[serde(rename = "type")]
    type_name: Option<String>,
}

/// An execute request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRequest {
    pub statement: String,
    pub warehouse_id: String,
    pub wait: Duration,
    pub cancel_on_timeout: bool,
    pub format: ResultFormat,
    pub parameters: Vec<Parameter>,
    pub row_limit: Option<u64>,
    pub byte_limit: Option<u64>,
    pub catalog: Option<String>,
    pub schema: Option<String>,
}

/// `"0s"`, or `"5s"` to `"50s"`.
pub fn parse_wait_timeout(text: &str) -> Result<Duration, ServiceError> {
    let secs = text
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n == 0 || (5..=50).contains(n));
    secs.map(Duration::from_secs).ok_or_else(|| {
        ServiceError::invalid(
            "wait_timeout",
            format!("`wait_timeout` must be `0s` or between `5s` and `50s`, not `{text}`"),
        )
    })
}

fn positive(field: &str, value: Option<IntegerText>) -> Result<Option<u64>, ServiceError> {
    match value {
        None => Ok(None),
        Some(text) => match text.0.parse::<u64>() {
            Ok(v) if v >= 1 => Ok(Some(v)),
            _ => Err(ServiceError::invalid(
                field,
                format!("`{field}` must be a positive integer"),
            )),
        },
    }
}

impl ExecuteBody {
    pub(crate) fn check(self) -> Result<ExecuteRequest, ServiceError> {
        let statement = self.statement.unwrap_or_default();
        if statement.trim().is_empty() {
            return Err(ServiceError::invalid(
                "statement",
                "`statement` is required",
            ));
        }
        let warehouse_id = self.warehouse_id.unwrap_or_default();
        if warehouse_id.is_empty() {
            return Err(ServiceError::invalid(
                "warehouse_id",
                "`warehouse_id` is required",
            ));
        }
        let wait = parse_wait_timeout(self.wait_timeout.as_deref().unwrap_or("10s"))?;
        let cancel_on_timeout = match self.on_wait_timeout.as_deref().unwrap_or("CONTINUE") {
            "CONTINUE" => false,
            "CANCEL" => true,
            other => {
                return Err(ServiceError::invalid(
                    "on_wait_timeout",
                    format!("`on_wait_timeout` must be CONTINUE or CANCEL, not `{other}`"),
                ))
            }
        };
        match self.disposition.as_deref().unwrap_or("INLINE") {
            "INLINE" => {}
            "EXTERNAL_LINKS" => {
                return Err(ServiceError::invalid(
                    "disposition",
                    "`disposition` EXTERNAL_LINKS is not supported by Lakeward; use INLINE",
                ))
            }
            other => {
                return Err(ServiceError::invalid(
                    "disposition",
                    format!("`disposition` must be INLINE, not `{other}`"),
                ))
            }
        }
        let format = match self.format.as_deref().unwrap_or("JSON_ARRAY") {
            "JSON_ARRAY" => ResultFormat::JsonArray,
            "ARROW_STREAM" => ResultFormat::ArrowStream,
            "CSV" => {
                return Err(ServiceError::invalid(
                    "format",
                    "`format` CSV is not supported by Lakeward (it needs EXTERNAL_LINKS); use JSON_ARRAY or ARROW_STREAM",
                ))
            }
            other => {
                return Err(ServiceError::invalid(
                    "format",
                    format!("`format` must be JSON_ARRAY or ARROW_STREAM, not `{other}`"),
                ))
            }
        };
        let mut parameters = Vec::new();
        for (i, item) in self.parameters.unwrap_or_default().into_iter().enumerate() {
            let name = item.name.unwrap_or_default();
            if name.is_empty() {
                let field = format!("parameters[{i}].name");
                return Err(ServiceError::invalid(
                    &field,
                    format!("`{field}` is required"),
                ));
            }
            parameters.push(Parameter {
                name,
                value: item.value.map(|v| v.0),
                type_name: item.type_name,
            });
        }
        Ok(ExecuteRequest {
            statement,
            warehouse_id,
            wait,
            cancel_on_timeout,
            format,
            parameters,
            row_limit: positive("row_limit", self.row_limit)?,
            byte_limit: positive("byte_limit", self.byte_limit)?,
            catalog: self.catalog,
            schema: self.schema,
        })
    }
}
