//! One module per group of subcommands.

pub(crate) mod data;
pub(crate) mod entities;
