//! Named tensors in memory: what the networks are built from (a state dict), whatever file
//! format they were read from.

/// A tensor converted to f32, contiguous row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
    /// Storage type it came from ("float32", "float16", …).
    pub dtype: &'static str,
}

/// `name → tensor` entries, in file order.
pub type StateDict = Vec<(String, Tensor)>;
