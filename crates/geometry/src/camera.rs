//! Pinhole camera with optional OpenCV radial-tangential ("plumb bob") distortion.
//!
//! Pixel convention as the reference: pixel k covers [k, k+1); the default principal point is
//! (W/2, H/2); feature cell (i, j) sits at pixel (8j + 4, 8i + 4).

use nalgebra::{Matrix2, Matrix3, Point2, Point3, Vector2};

use crate::GeometryError;

/// Pinhole intrinsics in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    /// Focal length along u.
    pub fx: f64,
    /// Focal length along v.
    pub fy: f64,
    /// Principal point u.
    pub cx: f64,
    /// Principal point v.
    pub cy: f64,
}

impl Intrinsics {
    /// Validated intrinsics: focal lengths finite and positive, principal point finite.
    pub fn new(fx: f64, fy: f64, cx: f64, cy: f64) -> Result<Self, GeometryError> {
        if !(fx.is_finite() && fy.is_finite() && fx > 0.0 && fy > 0.0) {
            return Err(GeometryError::BadIntrinsics(format!(
                "focal lengths must be positive and finite, got fx={fx} fy={fy}"
            )));
        }
        if !(cx.is_finite() && cy.is_finite()) {
            return Err(GeometryError::BadIntrinsics(format!("principal point must be finite, got cx={cx} cy={cy}")));
        }
        Ok(Intrinsics { fx, fy, cx, cy })
    }
    /// Validated intrinsics from a 3×3 K (rows): zero skew, `K[1][0] = 0` and a last row of
    /// `0 0 1` are required, since the pinhole model here has no skew term.
    pub fn from_matrix(k: &[[f64; 3]; 3]) -> Result<Self, GeometryError> {
        if k.iter().flatten().any(|v| !v.is_finite()) {
            return Err(GeometryError::BadIntrinsics("K holds NaN or infinite values".into()));
        }
        if k[0][1] != 0.0 || k[1][0] != 0.0 {
            return Err(GeometryError::BadIntrinsics(format!(
                "K has skew (K[0][1] = {}, K[1][0] = {}); only zero-skew pinhole cameras are supported",
                k[0][1], k[1][0]
            )));
        }
        if k[2] != [0.0, 0.0, 1.0] {
            return Err(GeometryError::BadIntrinsics(format!(
                "the last row of K is [{} {} {}], expected [0 0 1]",
                k[2][0], k[2][1], k[2][2]
            )));
        }
        Intrinsics::new(k[0][0], k[1][1], k[0][2], k[1][2])
    }
    /// The 3×3 matrix K.
    pub fn matrix(&self) -> Matrix3<f64> {
        Matrix3::new(self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0)
    }
    /// K⁻¹.
    pub fn inverse_matrix(&self) -> Matrix3<f64> {
        Matrix3::new(1.0 / self.fx, 0.0, -self.cx / self.fx, 0.0, 1.0 / self.fy, -self.cy / self.fy, 0.0, 0.0, 1.0)
    }
    /// All four parameters multiplied by `s` (an image resize by factor `s`).
    pub fn scaled(&self, s: f64) -> Self {
        Intrinsics { fx: self.fx * s, fy: self.fy * s, cx: self.cx * s, cy: self.cy * s }
    }
    /// Normalised image coordinates (x/z, y/z) → pixel.
    pub fn to_pixel(&self, xy: &Vector2<f64>) -> Point2<f64> {
        Point2::new(self.fx * xy.x + self.cx, self.fy * xy.y + self.cy)
    }
    /// Pixel → normalised image coordinates.
    pub fn to_normalized(&self, uv: &Point2<f64>) -> Vector2<f64> {
        Vector2::new((uv.x - self.cx) / self.fx, (uv.y - self.cy) / self.fy)
    }
}

/// OpenCV radial-tangential distortion `k1 k2 p1 p2 k3`, applied to normalised coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Distortion {
    /// Radial r².
    pub k1: f64,
    /// Radial r⁴.
    pub k2: f64,
    /// Tangential.
    pub p1: f64,
    /// Tangential.
    pub p2: f64,
    /// Radial r⁶.
    pub k3: f64,
}

impl Distortion {
    /// From 4 (k1 k2 p1 p2) or 5 (… k3) coefficients.
    pub fn from_coeffs(c: &[f64]) -> Result<Self, GeometryError> {
        if c.iter().any(|v| !v.is_finite()) {
            return Err(GeometryError::NotFinite);
        }
        match *c {
            [k1, k2, p1, p2] => Ok(Distortion { k1, k2, p1, p2, k3: 0.0 }),
            [k1, k2, p1, p2, k3] => Ok(Distortion { k1, k2, p1, p2, k3 }),
            _ => Err(GeometryError::BadIntrinsics(format!(
                "distortion needs 4 (k1 k2 p1 p2) or 5 (k1 k2 p1 p2 k3) coefficients, got {}",
                c.len()
            ))),
        }
    }
    /// True when every coefficient is zero.
    pub fn is_zero(&self) -> bool {
        [self.k1, self.k2, self.p1, self.p2, self.k3].iter().all(|v| *v == 0.0)
    }
    /// Ideal normalised coordinates → distorted normalised coordinates.
    pub fn distort(&self, xy: &Vector2<f64>) -> Vector2<f64> {
        let (x, y) = (xy.x, xy.y);
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3));
        Vector2::new(
            x * radial + 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x),
            y * radial + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y,
        )
    }
    fn jacobian(&self, xy: &Vector2<f64>) -> Matrix2<f64> {
        let (x, y) = (xy.x, xy.y);
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3));
        // d(radial)/d(r2)
        let dradial = self.k1 + r2 * (2.0 * self.k2 + 3.0 * r2 * self.k3);
        let dxx = radial + x * dradial * 2.0 * x + 2.0 * self.p1 * y + self.p2 * 6.0 * x;
        let dxy = x * dradial * 2.0 * y + 2.0 * self.p1 * x + self.p2 * 2.0 * y;
        let dyx = y * dradial * 2.0 * x + self.p1 * 2.0 * x + 2.0 * self.p2 * y;
        let dyy = radial + y * dradial * 2.0 * y + self.p1 * 6.0 * y + 2.0 * self.p2 * x;
        Matrix2::new(dxx, dxy, dyx, dyy)
    }
    /// Distorted normalised coordinates → ideal ones (Newton's method; OpenCV's fixed-point
    /// iteration stops after 5 steps and is less exact near the image border).
    pub fn undistort(&self, xy_d: &Vector2<f64>) -> Vector2<f64> {
        let mut xy = *xy_d;
        for _ in 0..30 {
            let residual = self.distort(&xy) - xy_d;
            if residual.norm() < 1e-14 {
                break;
            }
            match self.jacobian(&xy).try_inverse() {
                Some(j_inv) => xy -= j_inv * residual,
                None => break,
            }
        }
        xy
    }
}

/// A camera: intrinsics plus optional lens distortion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Pinhole part.
    pub intrinsics: Intrinsics,
    /// Lens distortion, `None` for an ideal pinhole.
    pub distortion: Option<Distortion>,
}

impl Camera {
    /// An ideal pinhole camera.
    pub fn pinhole(intrinsics: Intrinsics) -> Self {
        Camera { intrinsics, distortion: None }
    }
    /// Projects a camera-frame point to a (distorted) pixel; `None` behind or on the camera plane.
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN depths must be refused too
    pub fn project(&self, p_cam: &Point3<f64>) -> Option<Point2<f64>> {
        if !(p_cam.z > 0.0) {
            return None;
        }
        let xy = Vector2::new(p_cam.x / p_cam.z, p_cam.y / p_cam.z);
        let xy = match &self.distortion {
            Some(d) => d.distort(&xy),
            None => xy,
        };
        Some(self.intrinsics.to_pixel(&xy))
    }
    /// Maps an observed (distorted) pixel to where an ideal pinhole with the same K sees it.
    pub fn undistort_pixel(&self, uv: &Point2<f64>) -> Point2<f64> {
        match &self.distortion {
            Some(d) if !d.is_zero() => {
                let xy = d.undistort(&self.intrinsics.to_normalized(uv));
                self.intrinsics.to_pixel(&xy)
            }
            _ => *uv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tum() -> Camera {
        Camera {
            intrinsics: Intrinsics::new(520.9, 521.0, 325.1, 249.7).unwrap(),
            distortion: Some(Distortion::from_coeffs(&[0.2312, -0.7849, -0.0033, -0.0001, 0.9172]).unwrap()),
        }
    }

    #[test]
    fn k_inverse() {
        let k = Intrinsics::new(500.0, 510.0, 320.5, 241.0).unwrap();
        assert!((k.matrix() * k.inverse_matrix() - Matrix3::identity()).abs().max() < 1e-15);
        assert!(Intrinsics::new(-1.0, 1.0, 0.0, 0.0).is_err());
        assert!(Intrinsics::new(1.0, f64::NAN, 0.0, 0.0).is_err());
    }

    #[test]
    fn undistort_inverts_distort_over_the_image() {
        let cam = tum();
        let mut worst: f64 = 0.0;
        for v in (0..=480).step_by(16) {
            for u in (0..=640).step_by(16) {
                let ideal = Point2::new(u as f64, v as f64);
                let xy = cam.intrinsics.to_normalized(&ideal);
                let distorted = cam.intrinsics.to_pixel(&cam.distortion.unwrap().distort(&xy));
                let back = cam.undistort_pixel(&distorted);
                worst = worst.max((back - ideal).norm());
            }
        }
        assert!(worst < 1e-8, "worst round-trip error {worst} px");
    }

    #[test]
    fn projection() {
        let cam = Camera::pinhole(Intrinsics::new(525.0, 525.0, 320.0, 240.0).unwrap());
        let uv = cam.project(&Point3::new(0.1, -0.2, 2.0)).unwrap();
        assert!((uv - Point2::new(320.0 + 26.25, 240.0 - 52.5)).norm() < 1e-12);
        assert!(cam.project(&Point3::new(0.0, 0.0, -1.0)).is_none());
        assert!(cam.project(&Point3::new(0.0, 0.0, f64::NAN)).is_none());
        assert!(Distortion::from_coeffs(&[0.1, 0.2, 0.3]).is_err());
    }
}
