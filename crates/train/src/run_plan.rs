//! What every training program settles before it reads any data: where it computes, the
//! learning-rate schedule (course §3.1), the run it resumes and the seed it continues with, and
//! that its outputs can be written — so that a bad flag or an unwritable `--out` fails in the
//! first second, not after an epoch.

use std::path::{Path, PathBuf};

use dl_nn::Checkpoint;
use dl_optim::ScheduleSpec;
use dl_tensor::{Device, DeviceChoice};

use crate::{Run, TrainingResult};

/// The flags a run is planned from.
pub struct RunFlags<'a> {
    /// `--device`: cpu, cuda, cuda:N, metal or auto.
    pub device: &'a str,
    /// `--schedule`, as [`ScheduleSpec`] parses it.
    pub schedule: &'a str,
    /// `--resume`: the checkpoint of the run to continue.
    pub resume: Option<PathBuf>,
    /// `--out`: the checkpoint to write.
    pub out: &'a Path,
    /// The files the run reads, which its outputs must not overwrite.
    pub inputs: &'a [&'a Path],
    /// The names of the step's optimizers (their states are written beside `out`).
    pub optimizers: &'a [&'a str],
}

/// A run's settled plan; see the module documentation.
pub struct RunPlan {
    /// Where the run computes.
    pub device: Device,
    /// The learning-rate schedule.
    pub schedule_spec: ScheduleSpec,
    /// The run being written.
    pub out: Run,
    /// The run resumed, with its checkpoint (whose metadata says how to rebuild the model).
    pub resumed: Option<(Run, Checkpoint)>,
}

impl RunPlan {
    /// Parses the device and the schedule, opens the run to resume (`seed`, a `--seed`, becomes
    /// the seed to continue with: see [`Run::open_resumed`]), and checks the outputs
    /// ([`Run::check_outputs`]).
    pub fn new(flags: RunFlags<'_>, seed: &mut Option<u64>) -> TrainingResult<Self> {
        let device = flags.device.parse::<DeviceChoice>()?.resolve()?;
        let schedule_spec: ScheduleSpec = flags.schedule.parse()?;
        let resumed = Run::open_resumed(flags.resume, seed)?;
        let out = Run::new(flags.out);
        out.check_outputs(flags.optimizers, flags.inputs)?;
        Ok(Self {
            device,
            schedule_spec,
            out,
            resumed,
        })
    }
}
