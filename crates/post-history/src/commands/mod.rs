//! The post-history binary's own commands, beside the built-in ones.

pub(crate) mod data;
pub(crate) mod demo_posts;
pub(crate) mod entities;
pub(crate) mod rank_server;
