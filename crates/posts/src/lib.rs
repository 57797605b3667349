//! The post-history application built on celeriac.
//!
//! # Layout
//! - [`models`]: the ranking challenge's data models (ContentItem, Session, …).
//! - [`sample`]: deterministic generation of realistic raw sample data.
//! - [`raw`]: loaders for the raw Facebook/Reddit/Twitter formats and preprocessing.
//! - [`db`]: the posts database (schema, open, read).
//! - [`seed`]: seeding the posts database, with user-pool simulation.
//! - [`entities`]: named-entity extraction without downloaded models.
//! - [`tasks`]: the worker's three tasks and the scheduled job.
//! - [`ranking`]: the ranking rule, the entity cache and the `/rank` server.

pub mod db;
pub mod entities;
pub mod models;
pub mod ranking;
pub mod raw;
pub mod sample;
pub mod seed;
pub mod tasks;
