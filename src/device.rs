//! Choosing where tensors live. CPU always works; CUDA and Metal only when the
//! binary was built with the matching cargo feature.

use candle_core::Device;

use crate::error::{Error, Result};

pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if cfg!(feature = "cuda") {
                Ok(Device::new_cuda(0)?)
            } else {
                Err(Error::msg(
                    "this promot was built without CUDA; rebuild with `cargo build --release --features cuda`",
                ))
            }
        }
        "metal" => {
            if cfg!(feature = "metal") {
                Ok(Device::new_metal(0)?)
            } else {
                Err(Error::msg(
                    "this promot was built without Metal; rebuild with `cargo build --release --features metal`",
                ))
            }
        }
        other => Err(Error::msg(format!(
            "unknown device '{other}' (expected \"cpu\", \"cuda\" or \"metal\")"
        ))),
    }
}
