//! Choosing where tensors live: `cpu`, `cuda:N`, `metal` or `auto`, parsed from a string so every
//! command-line tool can take a `--device` flag.

use std::{fmt, str::FromStr};

use candle_core::Device;

use crate::{Result, TensorError};

/// A device named by the user, not yet opened.
///
/// ```
/// use dl_tensor::DeviceChoice;
/// assert_eq!("cuda:1".parse::<DeviceChoice>()?, DeviceChoice::Cuda(1));
/// assert_eq!("auto".parse::<DeviceChoice>()?, DeviceChoice::Auto);
/// assert!("tpu".parse::<DeviceChoice>().is_err());
/// # Ok::<(), dl_tensor::TensorError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The host CPU, always available.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal (`cuda` alone means `cuda:0`).
    Cuda(usize),
    /// The Apple GPU through Metal.
    Metal,
    /// The first compiled-in GPU that can be opened, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = TensorError;

    fn from_str(text: &str) -> Result<Self> {
        let normalised = text.trim().to_ascii_lowercase();
        let unknown = || TensorError::UnknownDevice {
            given: text.to_string(),
        };
        match normalised.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" | "mps" => Ok(Self::Metal),
            "auto" => Ok(Self::Auto),
            other => match other.strip_prefix("cuda:") {
                Some(ordinal) => ordinal.parse().map(Self::Cuda).map_err(|_| unknown()),
                None => Err(unknown()),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(formatter, "cpu"),
            Self::Cuda(ordinal) => write!(formatter, "cuda:{ordinal}"),
            Self::Metal => write!(formatter, "metal"),
            Self::Auto => write!(formatter, "auto"),
        }
    }
}

impl DeviceChoice {
    /// Opens the device, or explains which cargo feature is missing from this build.
    pub fn resolve(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(TensorError::BackendNotCompiled {
                        device: self.to_string(),
                        feature: "cuda",
                    });
                }
                Ok(Device::new_cuda(ordinal)?)
            }
            Self::Metal => {
                if !candle_core::utils::metal_is_available() {
                    return Err(TensorError::BackendNotCompiled {
                        device: self.to_string(),
                        feature: "metal",
                    });
                }
                Ok(Device::new_metal(0)?)
            }
            Self::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(device) = Device::new_cuda(0) {
                        return Ok(device);
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(device) = Device::new_metal(0) {
                        return Ok(device);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}
