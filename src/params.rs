//! Named parameters, the unit of freezing, optimisation and checkpointing.
//!
//! Every weight lives in a candle `Var` so it can be updated in place. Freezing
//! does not move or copy anything: a frozen parameter hands the model a
//! *detached* view of its storage, so autograd never tracks it, it receives no
//! gradient and the optimiser never touches it (it stays bit-identical).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Param {
    name: Arc<str>,
    var: Var,
    trainable: Arc<AtomicBool>,
}

impl Param {
    pub fn new(name: &str, tensor: Tensor) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            var: Var::from_tensor(&tensor)?,
            trainable: Arc::new(AtomicBool::new(true)),
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The value to compute with: tracked by autograd only when trainable
    /// (and not inside [`no_grad`]).
    pub fn tensor(&self) -> Tensor {
        if self.is_trainable() && !NO_GRAD.with(|f| f.get()) {
            self.var.as_tensor().clone()
        } else {
            self.var.as_tensor().detach()
        }
    }
    /// The underlying variable; optimisers update it with `set`.
    pub fn var(&self) -> &Var {
        &self.var
    }
    pub fn is_trainable(&self) -> bool {
        self.trainable.load(Ordering::Relaxed)
    }
    pub fn set_trainable(&self, on: bool) {
        self.trainable.store(on, Ordering::Relaxed)
    }
    pub fn shape(&self) -> Vec<usize> {
        self.var.dims().to_vec()
    }
    pub fn numel(&self) -> usize {
        self.var.elem_count()
    }
    /// Overwrite the value in place (checkpoint loading, resets).
    pub fn assign(&self, value: &Tensor) -> Result<()> {
        if value.dims() != self.var.dims() {
            return Err(Error::msg(format!(
                "parameter {}: expected shape {:?}, got {:?}",
                self.name,
                self.var.dims(),
                value.dims()
            )));
        }
        self.var
            .set(&value.to_dtype(self.var.dtype())?.to_device(self.var.device())?)?;
        Ok(())
    }
}

/// An ordered map from HF-style names ("encoder.block.0.layer.0.SelfAttention.q.weight") to parameters.
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    params: BTreeMap<String, Param>,
}

impl ParamStore {
    /// Every `(name, shape)` is present with that shape: what a model's `load`
    /// checks against its single source of parameter shapes.
    pub fn check_shapes(&self, shapes: &[(String, Vec<usize>)]) -> Result<()> {
        for (name, shape) in shapes {
            let p = self
                .get(name)
                .map_err(|_| Error::msg(format!("checkpoint is missing parameter '{name}'")))?;
            if p.shape() != shape.as_slice() {
                return Err(Error::msg(format!(
                    "parameter '{name}': expected shape {shape:?}, found {:?}",
                    p.shape()
                )));
            }
        }
        Ok(())
    }

    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, p: Param) {
        self.params.insert(p.name().to_string(), p);
    }
    pub fn get(&self, name: &str) -> Result<&Param> {
        self.params
            .get(name)
            .ok_or_else(|| Error::msg(format!("no parameter named '{name}'")))
    }
    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.params.values()
    }
    pub fn names(&self) -> Vec<String> {
        self.params.keys().cloned().collect()
    }
    pub fn len(&self) -> usize {
        self.params.len()
    }
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
    pub fn trainable(&self) -> Vec<Param> {
        self.iter().filter(|p| p.is_trainable()).cloned().collect()
    }
    pub fn count(&self) -> usize {
        self.iter().map(|p| p.numel()).sum()
    }
    pub fn trainable_count(&self) -> usize {
        self.iter().filter(|p| p.is_trainable()).map(|p| p.numel()).sum()
    }
    /// Parameters whose name matches a glob ("*", "decoder.block.*.layer.1.*").
    pub fn matching(&self, pattern: &str) -> Result<Vec<Param>> {
        let glob = globset::Glob::new(pattern)
            .map_err(|e| Error::msg(format!("bad parameter pattern '{pattern}': {e}")))?
            .compile_matcher();
        Ok(self.iter().filter(|p| glob.is_match(p.name())).cloned().collect())
    }
    /// Set trainable on every parameter matching `pattern`; returns how many matched.
    pub fn set_trainable(&self, pattern: &str, on: bool) -> Result<usize> {
        let hits = self.matching(pattern)?;
        if hits.is_empty() {
            return Err(Error::msg(format!("no parameter matches '{pattern}'")));
        }
        for p in &hits {
            p.set_trainable(on);
        }
        Ok(hits.len())
    }
    /// A snapshot of every value (for checkpoints and bit-identity checks).
    pub fn to_tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for p in self.iter() {
            out.insert(p.name().to_string(), p.var().as_tensor().copy()?);
        }
        Ok(out)
    }
    pub fn device(&self) -> Device {
        self.iter()
            .next()
            .map(|p| p.var().device().clone())
            .unwrap_or(Device::Cpu)
    }
    pub fn dtype(&self) -> DType {
        self.iter().next().map(|p| p.var().dtype()).unwrap_or(DType::F32)
    }
}

thread_local! {
    static NO_GRAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with every parameter read as a constant ([`Param::tensor`]
/// detached), as generation and evaluation want: no autograd graph is built,
/// so each layer's intermediates are freed as soon as the next one is done
/// (a graph over a long prefill would hold every layer's attention weights).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let before = NO_GRAD.with(|flag| flag.replace(true));
    let out = f();
    NO_GRAD.with(|flag| flag.set(before));
    out
}
