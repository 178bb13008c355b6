//! Opening a run: config + dataset + the run store, with the dataset's examples recorded.

use crate::config::{default_run_dir, Config};
use anyhow::{Context, Result};
use mentor_data::{load_dataset, Dataset};
use mentor_store::{SplitRecord, Store};
use mentor_teacher::SharedStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Run {
    pub cfg: Config,
    pub ds: Dataset,
    pub store: SharedStore,
    pub dir: PathBuf,
}

/// Loads `config`, its dataset, and the run store under `run_dir` (default `runs/<config stem>`).
pub fn open(config: &Path, run_dir: Option<PathBuf>) -> Result<Run> {
    let cfg = Config::load(config)?;
    let dir = run_dir.unwrap_or_else(|| default_run_dir(Some(config)));
    let json = serde_json::to_string(&cfg)?;
    open_with(cfg, dir, &json)
}

pub fn open_with(cfg: Config, dir: PathBuf, config_json: &str) -> Result<Run> {
    tracing::info!("stage data: loading {}", cfg.data.display_name());
    let ds = load_dataset(&cfg.data)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut store = Store::open_run_dir(&dir)?;
    store.set_meta("config", config_json)?;
    store.set_meta("mentor_version", env!("CARGO_PKG_VERSION"))?;
    let rec = SplitRecord {
        dataset: ds.name.clone(),
        method: ds.split_method.clone(),
        seed: ds.seed,
        fractions: ds.fractions,
        counts: ds.counts(),
    };
    let inserted = store.insert_examples(&ds.name, ds.iter(), &rec)?;
    let [tr, va, te] = ds.counts();
    tracing::info!(
        "stage data: {tr} train / {va} valid / {te} test ({inserted} new rows in {})",
        store.path().display()
    );
    Ok(Run {
        cfg,
        ds,
        store: Arc::new(Mutex::new(store)),
        dir,
    })
}

impl Run {
    /// The teacher prompts: the config's templates, with `[prompts] few_shot` worked examples
    /// drawn (seeded) from the train split only.
    pub fn prompts(&self) -> Result<mentor_core::prompt::Prompts> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut p = self.cfg.prompts()?;
        let n = self.cfg.prompts.few_shot;
        if n > 0 {
            let mut pool: Vec<mentor_core::Example> =
                self.ds.split(mentor_core::Split::Train).to_vec();
            if pool.len() < n + 1 {
                anyhow::bail!(
                    "prompts.few_shot = {n}, but the train split has only {} examples",
                    pool.len()
                );
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.cfg.prompts.few_shot_seed);
            pool.shuffle(&mut rng);
            p.set_exemplars(self.ds.task, n, &pool[..n + 1])
                .map_err(|e| anyhow::anyhow!("prompt template `cot`: {e}"))?;
        }
        Ok(p)
    }
}
