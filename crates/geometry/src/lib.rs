//! Geometry for glace: the pinhole camera with OpenCV distortion, rigid camera poses with
//! explicit direction (camera-to-world vs world-to-camera), and pose error metrics.
//!
//! Everything is `f64` on nalgebra. This crate knows nothing about images, files or networks.

pub mod camera;
pub mod p3p;
pub mod pose;
pub mod ransac;
pub mod rays;

pub use camera::{Camera, Distortion, Intrinsics};
pub use pose::{CamToWorld, PoseError, WorldToCam};

/// Errors of geometric validation (the data crate wraps them with the file they came from).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    /// A matrix holds NaN or infinite values.
    #[error("matrix contains NaN or infinite values")]
    NotFinite,
    /// The last row of a 4×4 rigid transform is not `0 0 0 1`.
    #[error("last row is [{}], expected [0 0 0 1]", fmt_row(.0))]
    BadBottomRow([f64; 4]),
    /// The rotation part is not orthonormal within the tolerance.
    #[error("rotation is not orthonormal: max |RᵀR − I| = {deviation:.3e} (tolerance {tolerance:.0e})")]
    NotOrthonormal { deviation: f64, tolerance: f64 },
    /// The rotation part is a reflection (determinant < 0).
    #[error("rotation has determinant {det:.4}, a reflection, not a rotation")]
    Reflection { det: f64 },
    /// A camera position too far from the origin for the networks' f32 scene coordinates.
    #[error("translation {norm:.3e} is beyond the {limit:.0e} a scene's coordinates may reach: re-centre the scene")]
    FarTranslation { norm: f64, limit: f64 },
    /// Intrinsics that cannot describe a camera.
    #[error("invalid intrinsics: {0}")]
    BadIntrinsics(String),
}

fn fmt_row(r: &[f64; 4]) -> String {
    r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(" ")
}
