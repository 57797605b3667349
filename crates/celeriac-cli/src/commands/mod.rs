//! One module per group of subcommands.

pub(crate) mod admin;
pub(crate) mod beat;
pub(crate) mod bench;
pub(crate) mod call;
pub(crate) mod control;
pub(crate) mod data;
pub(crate) mod delayed;
pub(crate) mod demo;
pub(crate) mod demo_posts;
pub(crate) mod entities;
pub(crate) mod events;
pub(crate) mod inspect;
pub(crate) mod purge;
pub(crate) mod rank_server;
pub(crate) mod remote;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod worker;
