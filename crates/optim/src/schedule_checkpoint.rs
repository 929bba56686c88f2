//! A learning-rate schedule in a checkpoint's metadata: which schedule a run used, and how far
//! along it was, so that a resumed run continues the step size η of gradient descent (course §3
//! "梯度下降") where the interrupted run left it instead of starting the schedule again.
//!
//! The schedule itself is written under [`SCHEDULE_KEY`] as its [`ScheduleSpec`] text (for
//! example `cosine:warmup=0:min_lr=0`), and its progress under `schedule.<name>` keys (for
//! example `schedule.step = 9375`), the values of [`LearningRateSchedule::state`].

use std::collections::BTreeMap;

use crate::{LearningRateSchedule, Result, ScheduleSpec};

/// The metadata key holding the schedule's [`ScheduleSpec`] text.
pub const SCHEDULE_KEY: &str = "schedule";

/// The prefix of the keys holding the schedule's progress.
const STATE_PREFIX: &str = "schedule.";

/// What [`restore_schedule`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleResume {
    /// The checkpoint was trained with the same schedule; it continues where it stopped.
    Continued,
    /// The checkpoint names another schedule (or none): the new one starts from its beginning.
    Restarted {
        /// The schedule the checkpoint was trained with, when it says.
        previous: Option<String>,
    },
}

impl ScheduleResume {
    /// What to tell someone resuming with `spec` (the schedule passed to [`restore_schedule`]):
    /// nothing when it continued, otherwise which schedule the checkpoint had and that `spec`
    /// starts from its beginning.
    pub fn notice(&self, spec: &ScheduleSpec) -> Option<String> {
        match self {
            Self::Continued => None,
            Self::Restarted { previous } => Some(format!(
                "was trained with schedule {}: {spec} starts from its beginning",
                previous.as_deref().unwrap_or("(not recorded)")
            )),
        }
    }
}

/// The metadata entries of `spec` and of the progress of `schedule` (built from it).
///
/// ```
/// use dl_optim::{restore_schedule, schedule_metadata, LearningRateSchedule, ScheduleResume, ScheduleSpec};
///
/// let spec: ScheduleSpec = "step:1:0.5".parse()?;
/// let mut schedule = spec.build(0.1, 100)?;
/// schedule.after_epoch(None)?;
/// let metadata = schedule_metadata(&spec, schedule.as_ref());
///
/// let mut resumed = spec.build(0.1, 100)?;
/// assert_eq!(restore_schedule(resumed.as_mut(), &spec, &metadata)?, ScheduleResume::Continued);
/// assert_eq!(resumed.learning_rate(), 0.05);
/// # Ok::<(), dl_optim::OptimError>(())
/// ```
pub fn schedule_metadata(
    spec: &ScheduleSpec,
    schedule: &dyn LearningRateSchedule,
) -> BTreeMap<String, String> {
    let mut metadata = schedule_state_metadata(schedule);
    metadata.insert(SCHEDULE_KEY.to_string(), spec.to_string());
    metadata
}

/// The metadata entries of the progress of `schedule` only (`schedule.<name>` keys): what a
/// checkpoint callback that does not know the spec writes.
pub fn schedule_state_metadata(schedule: &dyn LearningRateSchedule) -> BTreeMap<String, String> {
    schedule
        .state()
        .into_iter()
        .map(|(key, value)| (format!("{STATE_PREFIX}{key}"), value))
        .collect()
}

/// Continues `schedule`, built from `spec`, from the progress saved in `metadata` when the
/// checkpoint was trained with the same spec; otherwise leaves it at its beginning and says so.
/// Progress that cannot be read is an error naming the value.
pub fn restore_schedule(
    schedule: &mut dyn LearningRateSchedule,
    spec: &ScheduleSpec,
    metadata: &BTreeMap<String, String>,
) -> Result<ScheduleResume> {
    let previous = metadata.get(SCHEDULE_KEY);
    if previous != Some(&spec.to_string()) {
        return Ok(ScheduleResume::Restarted {
            previous: previous.cloned(),
        });
    }
    let state = metadata
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix(STATE_PREFIX)
                .map(|name| (name.to_string(), value.clone()))
        })
        .collect();
    schedule.load_state(&state)?;
    Ok(ScheduleResume::Continued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ScheduleSpec {
        text.parse().expect("a valid schedule")
    }

    #[test]
    fn a_cosine_schedule_continues_from_its_saved_step() {
        let cosine = spec("cosine");
        let mut schedule = cosine.build(1.0, 10).unwrap();
        for _ in 0..4 {
            schedule.after_step();
        }
        let metadata = schedule_metadata(&cosine, schedule.as_ref());
        assert_eq!(metadata.get("schedule.step").map(String::as_str), Some("4"));

        let mut resumed = cosine.build(1.0, 10).unwrap();
        let outcome = restore_schedule(resumed.as_mut(), &cosine, &metadata).unwrap();
        assert_eq!(outcome, ScheduleResume::Continued);
        assert_eq!(resumed.learning_rate(), schedule.learning_rate());
        assert!(resumed.learning_rate() < 1.0);
    }

    #[test]
    fn another_schedule_starts_from_its_beginning() {
        let step = spec("step:1:0.5");
        let mut schedule = step.build(1.0, 10).unwrap();
        schedule.after_epoch(None).unwrap();
        let metadata = schedule_metadata(&step, schedule.as_ref());

        let exponential = spec("exponential:0.9");
        let mut other = exponential.build(1.0, 10).unwrap();
        let outcome = restore_schedule(other.as_mut(), &exponential, &metadata).unwrap();
        assert_eq!(
            outcome,
            ScheduleResume::Restarted {
                previous: Some("step:1:0.5".to_string())
            }
        );
        assert_eq!(other.learning_rate(), 1.0);
        assert_eq!(
            outcome.notice(&exponential).as_deref(),
            Some("was trained with schedule step:1:0.5: exponential:0.9 starts from its beginning")
        );
        assert_eq!(ScheduleResume::Continued.notice(&exponential), None);

        let outcome = restore_schedule(other.as_mut(), &exponential, &BTreeMap::new()).unwrap();
        assert_eq!(outcome, ScheduleResume::Restarted { previous: None });
    }

    #[test]
    fn unreadable_progress_is_an_error_naming_the_value() {
        let cosine = spec("cosine");
        let mut schedule = cosine.build(1.0, 10).unwrap();
        let metadata = BTreeMap::from([
            (SCHEDULE_KEY.to_string(), cosine.to_string()),
            ("schedule.step".to_string(), "four".to_string()),
        ]);
        let error = restore_schedule(schedule.as_mut(), &cosine, &metadata).unwrap_err();
        assert!(error.to_string().contains("'step' = 'four'"), "{error}");
    }
}
