//! One module per subcommand. Each has an `Args` (its `--help`) and a `run` returning a Summary.

pub mod annotate;
pub mod bench;
pub mod compare;
pub mod data;
pub mod distill;
pub mod eval;
pub mod export;
pub mod fetch_assets;
pub mod generate;
pub mod import;
pub mod init;
pub mod ledger;
pub mod report;
pub mod score;
pub mod serve;
pub mod sweep;
pub mod train;
