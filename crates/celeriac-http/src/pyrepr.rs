//! Reading Python reprs of plain values back into JSON.
//!
//! Task events carry a task's arguments only as the sender's Python repr
//! (`argsrepr`: `(2, 'a', None)`). To retry a task that was not sent
//! through this API, the repr is read back when it holds only literals:
//! `None`, `True`, `False`, numbers, quoted strings, tuples, lists, and
//! dicts with string keys. Anything else (an object repr, a truncated
//! `...`) is an error, and the task is then not retryable from here.

use serde_json::{Map, Number, Value};

/// Why a repr could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a plain Python literal at byte {at}: {what}")]
pub struct ReprError {
    at: usize,
    what: &'static str,
}

/// Parse a Python literal; tuples become arrays.
///
/// # Errors
/// When the text is not a plain literal.
pub fn parse(text: &str) -> Result<Value, ReprError> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let value = p.value()?;
    p.space();
    if p.at != p.bytes.len() {
        return Err(p.error("trailing text"));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> ReprError {
        ReprError { at: self.at, what }
    }

    fn space(&mut self) {
        while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, ReprError> {
        self.space();
        if self.depth > 64 {
            return Err(self.error("nested too deeply"));
        }
        match self.peek() {
            Some(b'(') => self.sequence(b')', true),
            Some(b'[') => self.sequence(b']', false),
            Some(b'{') => self.dict(),
            Some(b'\'' | b'"') => self.string().map(Value::String),
            Some(b'-' | b'+' | b'0'..=b'9' | b'.') => self.number(),
            _ if self.eat("None") => Ok(Value::Null),
            _ if self.eat("True") => Ok(Value::Bool(true)),
            _ if self.eat("False") => Ok(Value::Bool(false)),
            _ => Err(self.error("expected a literal")),
        }
    }

    fn sequence(&mut self, close: u8, tuple: bool) -> Result<Value, ReprError> {
        self.at += 1;
        self.depth += 1;
        let mut items = Vec::new();
        loop {
            self.space();
            if self.peek() == Some(close) {
                self.at += 1;
                break;
            }
            items.push(self.value()?);
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(c) if c == close => {
                    self.at += 1;
                    // `(x)` is just x in Python; only `(x,)` is a tuple.
                    if tuple && items.len() == 1 {
                        self.depth -= 1;
                        return items.pop().ok_or_else(|| self.error("empty"));
                    }
                    break;
                }
                _ => return Err(self.error("expected , or a closing bracket")),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn dict(&mut self) -> Result<Value, ReprError> {
        self.at += 1;
        self.depth += 1;
        let mut map = Map::new();
        loop {
            self.space();
            if self.peek() == Some(b'}') {
                self.at += 1;
                break;
            }
            if !matches!(self.peek(), Some(b'\'' | b'"')) {
                return Err(self.error("dict keys must be strings"));
            }
            let key = self.string()?;
            self.space();
            if self.peek() != Some(b':') {
                return Err(self.error("expected :"));
            }
            self.at += 1;
            let value = self.value()?;
            map.insert(key, value);
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(self.error("expected , or }")),
            }
        }
        self.depth -= 1;
        Ok(Value::Object(map))
    }

    fn string(&mut self) -> Result<String, ReprError> {
        let quote = self.bytes[self.at];
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.at += 1;
            if c == quote {
                break;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(self.error("unterminated escape"));
            };
            self.at += 1;
            match e {
                b'\\' | b'\'' | b'"' => out.push(e),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'x' | b'u' | b'U' => {
                    let len = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = self
                        .bytes
                        .get(self.at..self.at + len)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or_else(|| self.error("bad escape"))?;
                    self.at += len;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(hex.encode_utf8(&mut buf).as_bytes());
                }
                _ => return Err(self.error("unknown escape")),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
    }

    fn number(&mut self) -> Result<Value, ReprError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at])
            .map_err(|_| self.error("bad number"))?;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| self.error("bad number"))
    }
}

/// `(2, 3)`: how Python shows an args tuple (as Celery's `argsrepr`).
pub fn repr_args(args: &[Value]) -> String {
    let items: Vec<String> = args.iter().map(repr).collect();
    if items.len() == 1 {
        format!("({},)", items[0])
    } else {
        format!("({})", items.join(", "))
    }
}

/// A Python-looking repr of a JSON value.
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(s) => format!(
            "'{}'",
            s.replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('\n', "\\n")
        ),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(&Value::String(k.clone())), repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn reads_what_celery_and_celeriac_write() {
        assert_eq!(parse("(2, 3)").ok(), Some(json!([2, 3])));
        assert_eq!(parse("('a',)").ok(), Some(json!(["a"])));
        assert_eq!(parse("()").ok(), Some(json!([])));
        assert_eq!(
            parse("{'k': [True, None], \"q\": -1.5}").ok(),
            Some(json!({"k": [true, null], "q": -1.5}))
        );
        assert_eq!(parse(r"('it\'s\n',)").ok(), Some(json!(["it's\n"])));
        assert_eq!(parse(r"('\xe9',)").ok(), Some(json!(["é"])));
    }

    #[test]
    fn reprs_read_back() {
        let value = json!([1, "it's\n", {"k": [true, null, 1.5]}]);
        let Some(items) = value.as_array() else {
            return;
        };
        assert_eq!(parse(&super::repr_args(items)).ok(), Some(value.clone()));
        assert_eq!(super::repr_args(&[json!("a")]), "('a',)");
    }

    #[test]
    fn refuses_what_is_not_a_literal() {
        for bad in [
            "(<object at 0x1>,)",
            "('abc...",
            "{1: 2}",
            "(1, 2",
            "datetime(1)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
