//! Samplers: where the next trial goes (course §8: 优化超参数). Grid covers every combination in
//! a seeded order; random draws each parameter uniformly (Bergstra & Bengio 2012); TPE models the
//! good and the bad trials and proposes where good is likelier (see `tpe.rs`).
//!
//! A trial's configuration depends only on the seed, its number and the trials it may see, never
//! on a running random stream, so a resumed search proposes exactly what the uninterrupted one
//! would have.

use serde::{Deserialize, Serialize};

use dl_tensor::SeededRng;

use crate::{tpe, Config, Direction, Result, SearchSpace, TrialRecord, TuneError};

/// The samplers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// Every combination of the parameters' grids, in a seeded random order.
    Grid,
    /// Independent uniform draws.
    Random,
    /// The Tree-structured Parzen Estimator (Bergstra et al. 2011), Optuna's default.
    Tpe,
}

/// The most configurations a grid may hold.
const MAX_GRID: usize = 1_000_000;

/// A sampler for one space and seed.
#[derive(Debug, Clone)]
pub struct Sampler {
    kind: SamplerKind,
    seed: u64,
    /// The grid, in its seeded order.
    grid: Vec<Config>,
}

impl Sampler {
    /// A sampler of `kind` over `space`; a grid is built (and checked) here.
    pub fn new(kind: SamplerKind, space: &SearchSpace, seed: u64) -> Result<Self> {
        let grid = if kind == SamplerKind::Grid {
            let mut grid = vec![Config::new()];
            for (name, parameter) in space.parameters() {
                let values = parameter.grid_values(name)?;
                if grid.len().saturating_mul(values.len()) > MAX_GRID {
                    return Err(TuneError::space(
                        name,
                        format!("the grid would exceed {MAX_GRID} configurations: coarsen it or use --sampler random"),
                    ));
                }
                grid = grid
                    .into_iter()
                    .flat_map(|config| {
                        values.iter().map(move |value| {
                            let mut config = config.clone();
                            config.insert(name.to_string(), value.clone());
                            config
                        })
                    })
                    .collect();
            }
            SeededRng::new(seed).shuffle(&mut grid);
            grid
        } else {
            Vec::new()
        };
        Ok(Self { kind, seed, grid })
    }

    /// The sampler's kind.
    pub fn kind(&self) -> SamplerKind {
        self.kind
    }

    /// How many configurations it can propose: the grid's size, or `None` (no end).
    pub fn capacity(&self) -> Option<usize> {
        (self.kind == SamplerKind::Grid).then_some(self.grid.len())
    }

    /// The configuration of trial `trial`, knowing the trials in `visible`; `None` once a grid
    /// is exhausted.
    pub fn sample(
        &self,
        space: &SearchSpace,
        trial: usize,
        visible: &[&TrialRecord],
        direction: Direction,
    ) -> Option<Config> {
        let mut rng = SeededRng::new(self.seed).fork(trial as u64 + 1);
        match self.kind {
            SamplerKind::Grid => self.grid.get(trial).cloned(),
            SamplerKind::Random => Some(random_config(space, &mut rng)),
            SamplerKind::Tpe => Some(tpe::sample(
                space,
                &mut rng,
                visible,
                direction,
                &tpe::TpeSettings::default(),
            )),
        }
    }
}

/// Every parameter drawn uniformly.
pub(crate) fn random_config(space: &SearchSpace, rng: &mut SeededRng) -> Config {
    space
        .parameters()
        .map(|(name, parameter)| (name.to_string(), parameter.sample_uniform(rng)))
        .collect()
}
