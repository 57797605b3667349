//! `entities`: named-entity extraction and its evaluation.

/// Arguments of `celeriac entities`.
#[derive(Debug, clap::Args)]
pub(crate) struct EntitiesArgs {}

pub(crate) fn run(_args: EntitiesArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
