//! Rigid camera poses. The two directions get distinct types because mixing them up is the
//! most common bug in relocalization code: pose files hold camera-to-world, the network's
//! training targets and PnP work in world-to-camera.

use nalgebra::{Isometry3, Matrix3, Matrix4, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};

use crate::GeometryError;

/// Largest distance of a camera from the scene's origin: scene coordinates are f32 in the
/// networks, whose precision at 10⁶ units is already a few centimetres.
pub const MAX_TRANSLATION: f64 = 1e6;

/// Default tolerance on max |RᵀR − I| for rotations read from files (7-Scenes poses are only
/// orthonormal to ~1.5e-4).
pub const ORTHONORMAL_TOLERANCE: f64 = 1e-3;

/// Camera-to-world transform: maps camera coordinates (OpenCV axes) to world coordinates.
/// Its translation is the camera centre in the world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CamToWorld(pub Isometry3<f64>);

/// World-to-camera transform: maps world coordinates to camera coordinates (OpenCV axes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldToCam(pub Isometry3<f64>);

/// Validates a 4×4 rigid transform and returns the nearest exact isometry.
///
/// Checks: all entries finite, bottom row `0 0 0 1` (within 1e-6), rotation orthonormal within
/// `tolerance`, determinant positive. The rotation is then re-orthonormalised (SVD projection).
pub fn rigid_from_matrix(m: &Matrix4<f64>, tolerance: f64) -> Result<Isometry3<f64>, GeometryError> {
    if m.iter().any(|v| !v.is_finite()) {
        return Err(GeometryError::NotFinite);
    }
    let bottom = [m[(3, 0)], m[(3, 1)], m[(3, 2)], m[(3, 3)]];
    let expected = [0.0, 0.0, 0.0, 1.0];
    if bottom.iter().zip(expected).any(|(a, b)| (a - b).abs() > 1e-6) {
        return Err(GeometryError::BadBottomRow(bottom));
    }
    let r: Matrix3<f64> = m.fixed_view::<3, 3>(0, 0).into_owned();
    let deviation = (r.transpose() * r - Matrix3::identity()).abs().max();
    let det = r.determinant();
    if det < 0.0 {
        return Err(GeometryError::Reflection { det });
    }
    if deviation > tolerance {
        return Err(GeometryError::NotOrthonormal { deviation, tolerance });
    }
    let rotation = nearest_rotation(&r);
    let t = Vector3::new(m[(0, 3)], m[(1, 3)], m[(2, 3)]);
    if t.norm() > MAX_TRANSLATION {
        return Err(GeometryError::FarTranslation { norm: t.norm(), limit: MAX_TRANSLATION });
    }
    Ok(Isometry3::from_parts(Translation3::from(t), UnitQuaternion::from_rotation_matrix(&rotation)))
}

/// The rotation closest to `r` in the Frobenius norm (polar decomposition via SVD).
pub fn nearest_rotation(r: &Matrix3<f64>) -> Rotation3<f64> {
    let svd = r.svd(true, true);
    let (u, v_t) = (svd.u.expect("u requested"), svd.v_t.expect("v_t requested"));
    let mut d = Matrix3::identity();
    if (u * v_t).determinant() < 0.0 {
        d[(2, 2)] = -1.0;
    }
    Rotation3::from_matrix_unchecked(u * d * v_t)
}

fn to_matrix(iso: &Isometry3<f64>) -> Matrix4<f64> {
    iso.to_homogeneous()
}

impl CamToWorld {
    /// Validates a camera-to-world 4×4 matrix (see [`rigid_from_matrix`]).
    pub fn from_matrix(m: &Matrix4<f64>, tolerance: f64) -> Result<Self, GeometryError> {
        rigid_from_matrix(m, tolerance).map(CamToWorld)
    }
    /// The homogeneous 4×4 matrix.
    pub fn to_matrix(&self) -> Matrix4<f64> {
        to_matrix(&self.0)
    }
    /// World-to-camera, the inverse.
    pub fn inverse(&self) -> WorldToCam {
        WorldToCam(self.0.inverse())
    }
    /// Camera centre in world coordinates.
    pub fn center(&self) -> Vector3<f64> {
        self.0.translation.vector
    }
    /// Rotation camera → world.
    pub fn rotation(&self) -> Matrix3<f64> {
        self.0.rotation.to_rotation_matrix().into_inner()
    }
    /// Maps a camera-frame point to the world.
    pub fn transform_point(&self, p_cam: &Point3<f64>) -> Point3<f64> {
        self.0.transform_point(p_cam)
    }
}

impl WorldToCam {
    /// Validates a world-to-camera 4×4 matrix (see [`rigid_from_matrix`]).
    pub fn from_matrix(m: &Matrix4<f64>, tolerance: f64) -> Result<Self, GeometryError> {
        rigid_from_matrix(m, tolerance).map(WorldToCam)
    }
    /// Builds the pose from a unit quaternion (w, x, y, z) and translation, as pose files store it.
    pub fn from_quaternion_translation(q_wxyz: [f64; 4], t: [f64; 3]) -> Result<Self, GeometryError> {
        if q_wxyz.iter().chain(t.iter()).any(|v| !v.is_finite()) {
            return Err(GeometryError::NotFinite);
        }
        let q = nalgebra::Quaternion::new(q_wxyz[0], q_wxyz[1], q_wxyz[2], q_wxyz[3]);
        if q.norm() < 1e-12 {
            return Err(GeometryError::NotFinite);
        }
        let rot = UnitQuaternion::from_quaternion(q);
        Ok(WorldToCam(Isometry3::from_parts(Translation3::new(t[0], t[1], t[2]), rot)))
    }
    /// Unit quaternion (w, x, y, z) with w ≥ 0, and translation.
    pub fn quaternion_translation(&self) -> ([f64; 4], [f64; 3]) {
        let mut q = *self.0.rotation.quaternion();
        if q.w < 0.0 {
            q = -q;
        }
        let t = self.0.translation.vector;
        ([q.w, q.i, q.j, q.k], [t.x, t.y, t.z])
    }
    /// The homogeneous 4×4 matrix.
    pub fn to_matrix(&self) -> Matrix4<f64> {
        to_matrix(&self.0)
    }
    /// Camera-to-world, the inverse.
    pub fn inverse(&self) -> CamToWorld {
        CamToWorld(self.0.inverse())
    }
    /// Maps a world point into the camera frame.
    pub fn transform_point(&self, p_world: &Point3<f64>) -> Point3<f64> {
        self.0.transform_point(p_world)
    }
}

/// Rotation and translation error of an estimate against ground truth, as the reference
/// measures them: angle of R_est·R_gtᵀ and distance between camera centres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseError {
    /// Rotation error in degrees.
    pub rot_deg: f64,
    /// Camera-centre distance in scene units (metres).
    pub trans: f64,
}

impl PoseError {
    /// Compares an estimated camera-to-world pose with the ground truth.
    pub fn between(estimate: &CamToWorld, ground_truth: &CamToWorld) -> Self {
        let delta = estimate.0.rotation * ground_truth.0.rotation.inverse();
        PoseError { rot_deg: delta.angle().to_degrees(), trans: (estimate.center() - ground_truth.center()).norm() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_matrix() -> Matrix4<f64> {
        let iso = Isometry3::new(Vector3::new(1.0, -2.0, 0.5), Vector3::new(0.3, -0.2, 1.1));
        iso.to_homogeneous()
    }

    #[test]
    fn inverse_round_trip() {
        let c2w = CamToWorld::from_matrix(&sample_matrix(), ORTHONORMAL_TOLERANCE).unwrap();
        let w2c = c2w.inverse();
        let p = Point3::new(0.2, 0.7, 3.0);
        let back = c2w.transform_point(&w2c.transform_point(&p));
        assert!((back - p).norm() < 1e-12);
        assert!((w2c.inverse().to_matrix() - c2w.to_matrix()).abs().max() < 1e-12);
    }

    #[test]
    fn reorthonormalises_slightly_off_rotation() {
        let mut m = sample_matrix();
        m[(0, 0)] += 1.5e-4;
        let c2w = CamToWorld::from_matrix(&m, ORTHONORMAL_TOLERANCE).unwrap();
        let r = c2w.rotation();
        assert!((r.transpose() * r - Matrix3::identity()).abs().max() < 1e-12);
        assert!((r - m.fixed_view::<3, 3>(0, 0)).abs().max() < 2e-4);
    }

    #[test]
    fn rejects_bad_matrices() {
        let mut m = sample_matrix();
        m[(1, 1)] += 0.01;
        assert!(matches!(CamToWorld::from_matrix(&m, 1e-3), Err(GeometryError::NotOrthonormal { .. })));
        let mut m = sample_matrix();
        m[(2, 3)] = f64::NAN;
        assert_eq!(CamToWorld::from_matrix(&m, 1e-3), Err(GeometryError::NotFinite));
        let mut m = sample_matrix();
        m[(3, 0)] = 0.5;
        assert!(matches!(CamToWorld::from_matrix(&m, 1e-3), Err(GeometryError::BadBottomRow(_))));
        let mut m = sample_matrix();
        for i in 0..3 {
            m[(i, 0)] = -m[(i, 0)];
        }
        assert!(matches!(CamToWorld::from_matrix(&m, 1e-3), Err(GeometryError::Reflection { .. })));
    }

    #[test]
    fn quaternion_round_trip_and_errors() {
        let w2c = CamToWorld::from_matrix(&sample_matrix(), 1e-3).unwrap().inverse();
        let (q, t) = w2c.quaternion_translation();
        assert!(q[0] >= 0.0);
        let back = WorldToCam::from_quaternion_translation(q, t).unwrap();
        assert!((back.to_matrix() - w2c.to_matrix()).abs().max() < 1e-12);

        let gt = w2c.inverse();
        let tilted = CamToWorld(Isometry3::from_parts(
            Translation3::from(gt.center() + Vector3::new(0.03, 0.0, 0.04)),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), 2f64.to_radians()) * gt.0.rotation,
        ));
        let err = PoseError::between(&tilted, &gt);
        assert!((err.rot_deg - 2.0).abs() < 1e-9);
        assert!((err.trans - 0.05).abs() < 1e-12);
    }
}
