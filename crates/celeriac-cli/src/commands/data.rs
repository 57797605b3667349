//! `sample-data`, `preprocess` and `seed`: building the posts database.

/// Arguments of `celeriac sample-data`.
#[derive(Debug, clap::Args)]
pub(crate) struct SampleDataArgs {}

/// Arguments of `celeriac preprocess`.
#[derive(Debug, clap::Args)]
pub(crate) struct PreprocessArgs {}

/// Arguments of `celeriac seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct SeedArgs {}

pub(crate) fn sample_data(_args: SampleDataArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}

pub(crate) fn preprocess(_args: PreprocessArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}

pub(crate) fn seed(_args: SeedArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
