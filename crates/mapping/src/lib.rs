//! Mapping: the training buffer built from augmented, encoded training images, feature
//! diffusion, the reprojection loss and the AdamW/one-cycle training loop that produces a map.
//!
//! Data flows one way: scene → buffer → head → map file. The contents arrive with the mapping issue.
