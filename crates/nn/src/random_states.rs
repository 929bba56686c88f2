//! A model's random generators in a checkpoint's metadata: dropout draws a new mask at every
//! training step from a seeded generator, so a run resumed from a checkpoint repeats the
//! uninterrupted run exactly only if it continues those generators where they stopped rather
//! than from the seed (the course's appendix on overfitting uses dropout; reproducible runs are
//! what lets two of them be compared).
//!
//! The entry is [`RANDOM_STATES_KEY`]; each generator's state is four hexadecimal numbers
//! joined by `:`, generators joined by `,`, in the order of [`Layer::random_states`].

use std::collections::BTreeMap;

use crate::{Layer, NnError, Result};

/// The metadata key that holds the model's generator states.
pub const RANDOM_STATES_KEY: &str = "random_states";

/// The metadata entry for `model`'s generator states, or `None` for a model that draws nothing.
///
/// ```
/// use dl_nn::{random_states_metadata, restore_random_states, Dropout, Layer, Mode};
/// use dl_tensor::{Device, SeededRng, Tensor};
///
/// let dropout = Dropout::new(0.5, SeededRng::new(3))?;
/// let (key, value) = random_states_metadata(&dropout).expect("dropout has a generator");
/// let ones = Tensor::ones(8, dl_tensor::DType::F32, &Device::Cpu)?;
/// let first = dropout.forward(&ones, Mode::Train)?.to_vec1::<f32>()?;
///
/// restore_random_states(&dropout, &[(key, value)].into_iter().collect())?;
/// let again = dropout.forward(&ones, Mode::Train)?.to_vec1::<f32>()?;
/// assert_eq!(first, again, "the same mask after restoring the saved state");
/// # Ok::<(), dl_nn::NnError>(())
/// ```
pub fn random_states_metadata(model: &dyn Layer) -> Option<(String, String)> {
    let states = model.random_states();
    if states.is_empty() {
        return None;
    }
    let encoded: Vec<String> = states
        .iter()
        .map(|state| {
            state
                .iter()
                .map(|word| format!("{word:016x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    Some((RANDOM_STATES_KEY.to_string(), encoded.join(",")))
}

/// Continues `model`'s generators from the states in `metadata`. A checkpoint without the entry
/// (a model that draws nothing, or a file from before the entry existed) leaves the generators
/// as they are; an unreadable entry, or one with a different number of generators than the
/// model has, is an error naming the key.
pub fn restore_random_states(model: &dyn Layer, metadata: &BTreeMap<String, String>) -> Result<()> {
    let Some(value) = metadata.get(RANDOM_STATES_KEY) else {
        return Ok(());
    };
    let unreadable = || {
        NnError::config(
            format!("checkpoint metadata '{RANDOM_STATES_KEY}'"),
            format!(
                "expected generator states like 0123…:…:…:…, separated by commas, got '{value}'"
            ),
        )
    };
    let states = value
        .split(',')
        .map(|state| {
            let words: Vec<u64> = state
                .split(':')
                .map(|word| u64::from_str_radix(word, 16).map_err(|_| unreadable()))
                .collect::<Result<_>>()?;
            <[u64; 4]>::try_from(words).map_err(|_| unreadable())
        })
        .collect::<Result<Vec<_>>>()?;
    model.set_random_states(&states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dropout;
    use dl_tensor::SeededRng;

    #[test]
    fn unreadable_entries_and_a_model_without_generators_are_errors() {
        let dropout = Dropout::new(0.5, SeededRng::new(1)).unwrap();
        for bad in ["", "12:34", "zz:1:2:3", "1:2:3:4:5"] {
            let metadata = BTreeMap::from([(RANDOM_STATES_KEY.to_string(), bad.to_string())]);
            let error = restore_random_states(&dropout, &metadata).unwrap_err();
            assert!(error.to_string().contains(RANDOM_STATES_KEY), "{error}");
        }
        let two = BTreeMap::from([(RANDOM_STATES_KEY.to_string(), "1:2:3:4,5:6:7:8".to_string())]);
        let error = restore_random_states(&dropout, &two).unwrap_err();
        assert!(error.to_string().contains("expected 1"), "{error}");
        let flatten = crate::Flatten;
        let error = restore_random_states(&flatten, &two).unwrap_err();
        assert!(error.to_string().contains("expected 0"), "{error}");
        assert!(random_states_metadata(&flatten).is_none());
        assert!(restore_random_states(&flatten, &BTreeMap::new()).is_ok());
    }
}
