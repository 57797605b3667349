//! What an ad hoc query may do: SQLite's authorizer and limits on the
//! connection of `tasks.query_posts_db`, so that the caller's SQL is judged
//! by SQLite's own parser, not by keywords.
//!
//! 1. Limits: no value longer than the result cap (`randomblob(1e9)`,
//!    `zeroblob`, `group_concat` over a cross join fail with "string or blob
//!    too big" before they allocate it), a small page cache, no attached
//!    databases, bounded SQL text, expression depth and compound selects.
//! 2. The authorizer, installed after the connection's own settings:
//!    reading and selecting are allowed; `ATTACH`/`DETACH`, writes, DDL,
//!    transactions and every PRAGMA but a read-only allow-list are denied;
//!    functions must be on [`ALLOWED_FUNCTIONS`] (SQLite's core, date, JSON,
//!    math, aggregate and window functions), so an extension's or a future
//!    function with side effects is refused until someone allows it.
//!
//! The first denial's reason is kept so the task's error names what was
//! refused instead of SQLite's bare "not authorized".

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::Connection;

/// Functions a query may call. Names are SQLite's (lower case).
#[rustfmt::skip]
pub(crate) const ALLOWED_FUNCTIONS: &[&str] = &[
    // core scalar functions
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif",
    "if", "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min",
    "nullif", "octet_length", "printf", "quote", "random", "randomblob", "replace", "round",
    "rtrim", "sign", "soundex", "substr", "substring", "trim", "typeof", "unhex", "unicode",
    "unlikely", "upper", "zeroblob", "sqlite_version", "sqlite_source_id", "changes",
    "total_changes", "last_insert_rowid",
    // date and time
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
    "current_date", "current_time", "current_timestamp",
    // aggregates
    "avg", "count", "group_concat", "string_agg", "sum", "total", "median", "percentile",
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // JSON (the `->`/`->>` operators are functions too)
    "->", "->>", "json", "jsonb", "json_array", "jsonb_array", "json_array_length",
    "json_error_position", "json_extract", "jsonb_extract", "json_insert", "jsonb_insert",
    "json_object", "jsonb_object", "json_patch", "jsonb_patch", "json_pretty", "json_remove",
    "jsonb_remove", "json_replace", "jsonb_replace", "json_set", "jsonb_set", "json_type",
    "json_valid", "json_quote", "json_group_array", "jsonb_group_array", "json_group_object",
    "jsonb_group_object", "json_each", "json_tree",
    // math
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos",
    "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow",
    "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
];

/// PRAGMAs a query may run without a value (they only report).
#[rustfmt::skip]
const REPORTING_PRAGMAS: &[&str] = &[
    "table_list", "collation_list", "function_list", "module_list", "pragma_list",
    "compile_options", "user_version", "schema_version", "application_id", "page_count",
    "page_size", "encoding", "freelist_count", "data_version",
];

/// PRAGMAs a query may run with an argument, which names what to describe.
#[rustfmt::skip]
const DESCRIBING_PRAGMAS: &[&str] = &[
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
    "foreign_key_list",
];

/// Page cache of a query connection, in KiB (SQLite's negative
/// `cache_size`): sorting and temporary tables past it spill to disk.
const CACHE_KIB: i64 = 4096;

/// Apply the limits and install the authorizer on `conn`. Values may be at
/// most `max_value_bytes` long; the first denial's reason is written to
/// `denied`.
///
/// # Errors
/// SQLite's error when a limit or the cache size cannot be set.
pub(crate) fn restrict(
    conn: &Connection,
    max_value_bytes: usize,
    denied: Arc<Mutex<Option<String>>>,
) -> rusqlite::Result<()> {
    let max_value = i32::try_from(max_value_bytes).unwrap_or(i32::MAX).max(1);
    for (limit, value) in [
        (Limit::SQLITE_LIMIT_LENGTH, max_value),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 1 << 20),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 200),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 100),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 100),
        (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
    ] {
        conn.set_limit(limit, value)?;
    }
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.authorizer(Some(move |ctx: AuthContext<'_>| match judge(&ctx.action) {
        Ok(()) => Authorization::Allow,
        Err(reason) => {
            let mut first = denied.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(reason);
            Authorization::Deny
        }
    }));
    Ok(())
}

/// Whether `action` is allowed in a read-only query; the reason when not.
fn judge(action: &AuthAction<'_>) -> Result<(), String> {
    let refuse = |what: String| {
        Err(format!(
            "not authorized: tasks.query_posts_db is read-only and refuses {what} (nothing was run)"
        ))
    };
    match action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => Ok(()),
        AuthAction::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            if ALLOWED_FUNCTIONS.contains(&name.as_str()) {
                Ok(())
            } else {
                refuse(format!("the function {function_name}()"))
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let reporting = pragma_value.is_none() && REPORTING_PRAGMAS.contains(&name.as_str());
            if reporting || DESCRIBING_PRAGMAS.contains(&name.as_str()) {
                Ok(())
            } else {
                refuse(format!("PRAGMA {pragma_name}"))
            }
        }
        AuthAction::Attach { .. } => refuse("ATTACH".to_owned()),
        AuthAction::Detach { .. } => refuse("DETACH".to_owned()),
        other => refuse(describe(other)),
    }
}

/// A short name for a denied action, for the error message.
fn describe(action: &AuthAction<'_>) -> String {
    let debug = format!("{action:?}");
    let name = debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or("this statement");
    format!("a {name} statement")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_allowed_and_the_rest_is_not() {
        assert!(judge(&AuthAction::Select).is_ok());
        assert!(judge(&AuthAction::Function {
            function_name: "json_extract"
        })
        .is_ok());
        assert!(judge(&AuthAction::Function {
            function_name: "load_extension"
        })
        .is_err());
        let describe_table = AuthAction::Pragma {
            pragma_name: "table_info",
            pragma_value: Some("posts"),
        };
        assert!(judge(&describe_table).is_ok());
        let set_dir = AuthAction::Pragma {
            pragma_name: "temp_store_directory",
            pragma_value: Some("/x"),
        };
        let reason = judge(&set_dir).err().unwrap_or_default();
        assert!(reason.contains("PRAGMA temp_store_directory"), "{reason}");
        let set_version = AuthAction::Pragma {
            pragma_name: "user_version",
            pragma_value: Some("7"),
        };
        assert!(judge(&set_version).is_err());
        let attach = judge(&AuthAction::Attach {
            filename: "/etc/passwd",
        });
        assert!(attach.err().unwrap_or_default().contains("ATTACH"));
        let insert = judge(&AuthAction::Insert {
            table_name: "posts",
        });
        assert!(insert.err().unwrap_or_default().contains("Insert"));
    }
}
