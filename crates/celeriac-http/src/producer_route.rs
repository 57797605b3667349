//! [`ProducerRoute`]: a producer route the application declares, served
//! under `/producer/api/{name}` (see `crate::routes::producer`).
//!
//! 1. A route has a name (the path segment, `[a-z0-9_-]+`), the task it
//!    sends (by name, registered in this process or not), and its body
//!    fields, in order: each becomes one positional argument of the task,
//!    checked against its [`ArgType`]. A route without fields takes no body.
//! 2. [`check_all`] refuses invalid names, duplicate routes and duplicate
//!    fields with a typed [`Error`] before the server starts
//!    ([`crate::HttpConfig::check`]).
//! 3. `ProducerRoute::args_from` turns a JSON body into the task's
//!    positional arguments, or a 422 naming the field that is missing, of
//!    the wrong type, or not declared.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::{ApiError, Error};

/// The JSON type a body field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgType {
    /// An integer that fits an `i64`.
    Integer,
    /// An integer from 0 to `u64::MAX`.
    UnsignedInteger,
    /// Any JSON number.
    Number,
    /// A string.
    String,
    /// `true` or `false`.
    Boolean,
    /// A JSON array (of anything).
    Array,
    /// A JSON object (of anything).
    Object,
    /// Any JSON value, `null` included.
    Any,
}

impl ArgType {
    /// Whether `value` has this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ArgType::Integer => value.is_i64(),
            ArgType::UnsignedInteger => value.is_u64(),
            ArgType::Number => value.is_number(),
            ArgType::String => value.is_string(),
            ArgType::Boolean => value.is_boolean(),
            ArgType::Array => value.is_array(),
            ArgType::Object => value.is_object(),
            ArgType::Any => true,
        }
    }

    /// What a value of this type is, for messages: "an integer ≥ 0".
    pub fn describe(self) -> &'static str {
        match self {
            ArgType::Integer => "an integer",
            ArgType::UnsignedInteger => "an integer ≥ 0",
            ArgType::Number => "a number",
            ArgType::String => "a string",
            ArgType::Boolean => "a boolean",
            ArgType::Array => "an array",
            ArgType::Object => "an object",
            ArgType::Any => "any JSON value",
        }
    }
}

/// What a JSON value is, for messages: "a string", "null".
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "the integer",
        Value::Number(_) => "the number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One body field of a [`ProducerRoute`]: one positional argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerArg {
    /// The JSON field name.
    pub name: String,
    /// The JSON type its value must have.
    pub arg_type: ArgType,
}

/// A producer route: `POST /producer/api/{name}` sends `task` with the
/// body's fields as positional arguments and answers `{"message": "job
/// published", "job_id"}`; `GET /producer/api/{name}/{job_id}` answers
/// `{"ready", "result"}`; `GET /producer/api/{name}` answers 405 (a `GET`
/// never sends work).
///
/// ```
/// use celeriac_http::{ArgType, HttpConfig, ProducerRoute};
///
/// let config = HttpConfig {
///     producer_routes: vec![
///         // POST /producer/api/ping, no body: sends tasks.ping().
///         ProducerRoute::new("ping", "tasks.ping"),
///         // POST /producer/api/add {"x": 1, "y": 2}: sends tasks.add(1, 2).
///         ProducerRoute::new("add", "tasks.add")
///             .arg("x", ArgType::Integer)
///             .arg("y", ArgType::Integer)
///             .description("Add two integers."),
///     ],
///     ..HttpConfig::default()
/// };
/// assert!(config.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRoute {
    name: String,
    task: String,
    args: Vec<ProducerArg>,
    description: Option<String>,
}

impl ProducerRoute {
    /// A route `/producer/api/{name}` sending the task named `task`, with
    /// no body until fields are declared with [`ProducerRoute::arg`].
    /// The name is checked by [`crate::HttpConfig::check`].
    pub fn new(name: impl Into<String>, task: impl Into<String>) -> Self {
        ProducerRoute {
            name: name.into(),
            task: task.into(),
            args: Vec::new(),
            description: None,
        }
    }

    /// Declare the next body field: a required JSON field `name` of type
    /// `arg_type`, sent as the task's next positional argument.
    #[must_use]
    pub fn arg(mut self, name: impl Into<String>, arg_type: ArgType) -> Self {
        self.args.push(ProducerArg {
            name: name.into(),
            arg_type,
        });
        self
    }

    /// What the route does, for the OpenAPI document.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The path segment after `/producer/api/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the task it sends.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The body fields, in argument order.
    pub fn args(&self) -> &[ProducerArg] {
        &self.args
    }

    /// The description given with [`ProducerRoute::description`].
    pub fn description_text(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The name of its request body in the OpenAPI document and in
    /// messages: `sum` → `SumRequest`, `wait_and_return` →
    /// `WaitAndReturnRequest`.
    pub fn request_name(&self) -> String {
        let mut out = String::new();
        for word in self.name.split(['_', '-']) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
        out.push_str("Request");
        out
    }

    /// Refuse a blank or malformed name, a blank task name, and blank or
    /// repeated field names.
    ///
    /// # Errors
    /// [`Error::InvalidProducerRoute`].
    pub fn check(&self) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidProducerRoute {
            name: self.name.clone(),
            reason,
        };
        if self.name.is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        if let Some(c) = self
            .name
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        {
            return Err(invalid(format!(
                "the name has {c:?}; only a-z, 0-9, '_' and '-' are allowed"
            )));
        }
        if self.task.trim().is_empty() {
            return Err(invalid("the task name is empty".into()));
        }
        let mut seen = HashSet::new();
        for arg in &self.args {
            if arg.name.is_empty() {
                return Err(invalid("a field name is empty".into()));
            }
            if !seen.insert(arg.name.as_str()) {
                return Err(invalid(format!(
                    "the field {:?} is declared twice",
                    arg.name
                )));
            }
        }
        Ok(())
    }

    /// The task's positional arguments from a JSON body: an object with
    /// exactly the declared fields, each of its type.
    ///
    /// # Errors
    /// A 422 naming the field that is missing, of the wrong type or not
    /// declared, or saying the body is not an object.
    pub(crate) fn args_from(&self, body: Value) -> Result<Vec<Value>, ApiError> {
        let Value::Object(mut fields) = body else {
            return Err(ApiError::unprocessable(format!(
                "the body must be a JSON object ({}) with the fields {}, not {}",
                self.request_name(),
                self.field_list(),
                kind_of(&body),
            )));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|key| !self.args.iter().any(|arg| &arg.name == *key))
        {
            return Err(ApiError::unprocessable(format!(
                "unknown field `{unknown}`, expected {}",
                self.field_list()
            )));
        }
        self.args
            .iter()
            .map(|arg| {
                let value = fields.remove(&arg.name).ok_or_else(|| {
                    ApiError::unprocessable(format!("missing field `{}`", arg.name))
                })?;
                if !arg.arg_type.accepts(&value) {
                    let shown = match &value {
                        Value::Number(_) | Value::Bool(_) => format!(" {value}"),
                        _ => String::new(),
                    };
                    return Err(ApiError::unprocessable(format!(
                        "`{}` must be {}, not {}{shown}",
                        arg.name,
                        arg.arg_type.describe(),
                        kind_of(&value),
                    )));
                }
                Ok(value)
            })
            .collect()
    }

    /// "`x`, `y`" (or "none" for a route without fields).
    fn field_list(&self) -> String {
        if self.args.is_empty() {
            return "none".into();
        }
        let names: Vec<String> = self.args.iter().map(|a| format!("`{}`", a.name)).collect();
        names.join(", ")
    }
}

/// Check every route ([`ProducerRoute::check`]) and refuse two routes with
/// the same name.
///
/// # Errors
/// [`Error::InvalidProducerRoute`], [`Error::DuplicateProducerRoute`].
pub(crate) fn check_all(routes: &[ProducerRoute]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for route in routes {
        route.check()?;
        if !seen.insert(route.name()) {
            return Err(Error::DuplicateProducerRoute {
                name: route.name().to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn pair() -> ProducerRoute {
        ProducerRoute::new("pair-up", "tasks.pair")
            .arg("count", ArgType::UnsignedInteger)
            .arg("label", ArgType::String)
    }

    #[test]
    fn bodies_become_positional_args_in_declared_order() {
        let args = pair()
            .args_from(json!({"label": "x", "count": 3}))
            .expect("args");
        assert_eq!(args, vec![json!(3), json!("x")]);
        assert_eq!(pair().request_name(), "PairUpRequest");
    }

    #[test]
    fn bad_bodies_are_422_naming_the_field() {
        let cases = [
            (json!({"label": "x"}), "missing field `count`"),
            (
                json!({"count": -1, "label": "x"}),
                "`count` must be an integer ≥ 0",
            ),
            (json!({"count": 1.5, "label": "x"}), "`count`"),
            (json!({"count": 1, "label": 2}), "`label` must be a string"),
            (
                json!({"count": 1, "label": "x", "more": 1}),
                "unknown field `more`",
            ),
            (json!([1, "x"]), "PairUpRequest"),
            (json!(null), "JSON object"),
        ];
        for (body, mentions) in cases {
            let err = pair().args_from(body.clone()).expect_err("refused");
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(err.message.contains(mentions), "{body}: {}", err.message);
        }
    }

    #[test]
    fn types_accept_what_they_say() {
        assert!(ArgType::Integer.accepts(&json!(-3)));
        assert!(!ArgType::Integer.accepts(&json!(u64::MAX)));
        assert!(ArgType::UnsignedInteger.accepts(&json!(u64::MAX)));
        assert!(ArgType::Number.accepts(&json!(1.5)));
        assert!(ArgType::Boolean.accepts(&json!(false)));
        assert!(ArgType::Array.accepts(&json!([])));
        assert!(ArgType::Object.accepts(&json!({})));
        assert!(ArgType::Any.accepts(&Value::Null));
        assert!(!ArgType::String.accepts(&json!(1)));
    }

    #[test]
    fn invalid_and_duplicate_routes_are_refused() {
        for name in ["", "Sum", "a/b", "a b", "é", "{x}"] {
            let err = check_all(&[ProducerRoute::new(name, "t")]).expect_err(name);
            assert!(
                matches!(err, Error::InvalidProducerRoute { .. }),
                "{name}: {err}"
            );
        }
        let twice = ProducerRoute::new("x", "t")
            .arg("a", ArgType::Any)
            .arg("a", ArgType::Any);
        assert!(matches!(
            check_all(&[twice]),
            Err(Error::InvalidProducerRoute { .. })
        ));
        assert!(matches!(
            check_all(&[ProducerRoute::new("x", " ")]),
            Err(Error::InvalidProducerRoute { .. })
        ));
        let err = check_all(&[pair(), ProducerRoute::new("pair-up", "other")]).expect_err("dup");
        assert!(
            matches!(&err, Error::DuplicateProducerRoute { name } if name == "pair-up"),
            "{err}"
        );
        assert!(check_all(&[pair(), ProducerRoute::new("a_b-9", "t")]).is_ok());
    }
}
