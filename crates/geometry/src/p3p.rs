//! Minimal absolute-pose solver: Lambda Twist P3P (Persson & Nordberg, ECCV 2018), in f64.
//!
//! Given three bearing vectors (unit, camera frame) and their world points, returns up to four
//! world-to-camera poses `x_cam = R·x_world + t`.

use nalgebra::{Matrix3, Vector3};

/// A candidate pose (world-to-camera).
#[derive(Clone, Copy, Debug)]
pub struct P3pSolution {
    /// Rotation world → camera.
    pub rotation: Matrix3<f64>,
    /// Translation.
    pub translation: Vector3<f64>,
}

/// Roots of x² + b·x + c (numerically stable form); `None` when complex.
#[inline]
fn root2real(b: f64, c: f64) -> Option<(f64, f64)> {
    let v = b * b - 4.0 * c;
    if v < 0.0 {
        return None;
    }
    let y = v.sqrt();
    Some(if b < 0.0 { (0.5 * (-b + y), 0.5 * (-b - y)) } else { (2.0 * c / (-b + y), 2.0 * c / (-b - y)) })
}

/// One real root of x³ + b·x² + c·x + d, the one Lambda Twist needs, by Newton from a good start.
fn cubic_root(b: f64, c: f64, d: f64) -> f64 {
    let mut r0;
    if b * b >= 3.0 * c {
        let v = (b * b - 3.0 * c).sqrt();
        let t1 = (-b - v) / 3.0;
        let k = ((t1 + b) * t1 + c) * t1 + d;
        if k > 0.0 {
            r0 = t1 - (-k / (3.0 * t1 + b)).sqrt();
        } else {
            let t2 = (-b + v) / 3.0;
            let k = ((t2 + b) * t2 + c) * t2 + d;
            r0 = t2 + (-k / (3.0 * t2 + b)).sqrt();
        }
    } else {
        r0 = -b / 3.0;
        if ((3.0 * r0 + 2.0 * b) * r0 + c).abs() < 1e-4 {
            r0 += 1.0;
        }
    }
    for i in 0..50 {
        let fx = ((r0 + b) * r0 + c) * r0 + d;
        if i >= 7 && fx.abs() <= 1e-13 {
            break;
        }
        let fpx = (3.0 * r0 + 2.0 * b) * r0 + c;
        if fpx == 0.0 {
            break;
        }
        r0 -= fx / fpx;
    }
    r0
}

/// Adjugate (transposed cofactor matrix) of a 3×3 matrix.
fn adjugate(m: &Matrix3<f64>) -> Matrix3<f64> {
    let c = |r0: usize, r1: usize, c0: usize, c1: usize| m[(r0, c0)] * m[(r1, c1)] - m[(r0, c1)] * m[(r1, c0)];
    Matrix3::new(
        c(1, 2, 1, 2),
        -c(0, 2, 1, 2),
        c(0, 1, 1, 2),
        -c(1, 2, 0, 2),
        c(0, 2, 0, 2),
        -c(0, 1, 0, 2),
        c(1, 2, 0, 1),
        -c(0, 2, 0, 1),
        c(0, 1, 0, 1),
    )
}

/// Eigen-decomposition of a symmetric 3×3 matrix known to have one zero eigenvalue:
/// returns eigenvectors (columns, the non-zero ones first, larger magnitude first) and eigenvalues.
fn eig_with_known_zero(x: &Matrix3<f64>) -> Option<(Matrix3<f64>, [f64; 2])> {
    let b = -x[(0, 0)] - x[(1, 1)] - x[(2, 2)];
    let x01_sq = x[(0, 1)] * x[(0, 1)];
    let c = -x01_sq - x[(0, 2)] * x[(0, 2)] - x[(1, 2)] * x[(1, 2)]
        + x[(0, 0)] * (x[(1, 1)] + x[(2, 2)])
        + x[(1, 1)] * x[(2, 2)];
    let (mut e1, mut e2) = root2real(b, c)?;
    if e1.abs() < e2.abs() {
        std::mem::swap(&mut e1, &mut e2);
    }
    let mx0011 = -x[(0, 0)] * x[(1, 1)];
    let prec_0 = x[(0, 1)] * x[(1, 2)] - x[(0, 2)] * x[(1, 1)];
    let prec_1 = x[(0, 1)] * x[(0, 2)] - x[(0, 0)] * x[(1, 2)];
    let vec_for = |e: f64| {
        let tmp = 1.0 / (e * (x[(0, 0)] + x[(1, 1)]) + mx0011 - e * e + x01_sq);
        let a1 = -(e * x[(0, 2)] + prec_0) * tmp;
        let a2 = -(e * x[(1, 2)] + prec_1) * tmp;
        let rnorm = 1.0 / (a1 * a1 + a2 * a2 + 1.0).sqrt();
        Vector3::new(a1 * rnorm, a2 * rnorm, rnorm)
    };
    let (v1, v2) = (vec_for(e1), vec_for(e2));
    let c0 = x.column(0).into_owned();
    let c1 = x.column(1).into_owned();
    let v3 = c0.cross(&c1).normalize();
    Some((Matrix3::from_columns(&[v1, v2, v3]), [e1, e2]))
}

/// Gauss–Newton polish of the three depths on the three distance constraints.
fn refine_depths(l: &mut Vector3<f64>, a: [f64; 3], b: [f64; 3]) {
    let (a12, a13, a23) = (a[0], a[1], a[2]);
    let (b12, b13, b23) = (b[0], b[1], b[2]);
    let residual = |l: &Vector3<f64>| {
        Vector3::new(
            l.x * l.x + l.y * l.y + b12 * l.x * l.y - a12,
            l.x * l.x + l.z * l.z + b13 * l.x * l.z - a13,
            l.y * l.y + l.z * l.z + b23 * l.y * l.z - a23,
        )
    };
    for _ in 0..5 {
        let r = residual(l);
        let err = r.abs().sum();
        if err < 1e-10 {
            break;
        }
        let j = Matrix3::new(
            2.0 * l.x + b12 * l.y,
            2.0 * l.y + b12 * l.x,
            0.0,
            2.0 * l.x + b13 * l.z,
            0.0,
            2.0 * l.z + b13 * l.x,
            0.0,
            2.0 * l.y + b23 * l.z,
            2.0 * l.z + b23 * l.y,
        );
        let Some(ji) = j.try_inverse() else { break };
        let l1 = *l - ji * r;
        if residual(&l1).abs().sum() > err {
            break;
        }
        *l = l1;
    }
}

/// Solves P3P. `y` are bearing vectors (need not be unit; they are normalised), `x` world points.
/// Returns up to 4 solutions; none for degenerate input (collinear or coincident points, NaN).
pub fn p3p(y: [Vector3<f64>; 3], x: [Vector3<f64>; 3]) -> Vec<P3pSolution> {
    let mut out = Vec::with_capacity(4);
    let (Some(y1), Some(y2), Some(y3)) =
        (y[0].try_normalize(1e-300), y[1].try_normalize(1e-300), y[2].try_normalize(1e-300))
    else {
        return out;
    };
    let [x1, x2, x3] = x;
    let b12 = -2.0 * y1.dot(&y2);
    let b13 = -2.0 * y1.dot(&y3);
    let b23 = -2.0 * y2.dot(&y3);
    let d12 = x1 - x2;
    let d13 = x1 - x3;
    let d23 = x2 - x3;
    let d12xd13 = d12.cross(&d13);
    let (a12, a13, a23) = (d12.norm_squared(), d13.norm_squared(), d23.norm_squared());
    if !(a12 > 0.0 && a13 > 0.0 && a23 > 0.0 && d12xd13.norm_squared() > 1e-20 * a12 * a13) {
        return out; // coincident or collinear world points
    }
    // The pencil D1 − g·D2 of the two constraint conics (D1 = a23·M12 − a12·M23,
    // D2 = a23·M13 − a13·M23) is singular for the g solving det(D1 − g·D2) = 0, a cubic whose
    // coefficients follow from det(A + tB) = det A + t·tr(adj(A)B) + t²·tr(A·adj(B)) + t³·det B.
    let d1 = Matrix3::new(
        a23,
        0.5 * a23 * b12,
        0.0,
        0.5 * a23 * b12,
        a23 - a12,
        -0.5 * a12 * b23,
        0.0,
        -0.5 * a12 * b23,
        -a12,
    );
    let d2 = Matrix3::new(
        a23,
        0.0,
        0.5 * a23 * b13,
        0.0,
        -a13,
        -0.5 * a13 * b23,
        0.5 * a23 * b13,
        -0.5 * a13 * b23,
        a23 - a13,
    );
    let det2 = d2.determinant();
    if det2.abs() < 1e-300 || !det2.is_finite() {
        return out;
    }
    let c2 = -(d1 * adjugate(&d2)).trace() / det2;
    let c1 = (adjugate(&d1) * d2).trace() / det2;
    let c0 = -d1.determinant() / det2;
    let g = cubic_root(c2, c1, c0);

    let a00 = a23 * (1.0 - g);
    let a01 = a23 * b12 * 0.5;
    let a02 = a23 * b13 * g * -0.5;
    let a11 = a23 - a12 + a13 * g;
    let a12m = b23 * (a13 * g - a12) * 0.5;
    let a22 = g * (a13 - a23) - a12;
    let m = Matrix3::new(a00, a01, a02, a01, a11, a12m, a02, a12m, a22);
    let Some((v, l)) = eig_with_known_zero(&m) else { return out };
    let vv = (-l[1] / l[0]).max(0.0).sqrt();

    let mut depths: Vec<Vector3<f64>> = Vec::with_capacity(4);
    for s in [vv, -vv] {
        let w2 = 1.0 / (s * v[(0, 1)] - v[(0, 0)]);
        let w0 = (v[(1, 0)] - s * v[(1, 1)]) * w2;
        let w1 = (v[(2, 0)] - s * v[(2, 1)]) * w2;
        let a = 1.0 / ((a13 - a12) * w1 * w1 - a12 * b13 * w1 - a12);
        let b = (a13 * b12 * w1 - a12 * b13 * w0 - 2.0 * w0 * w1 * (a12 - a13)) * a;
        let c = ((a13 - a12) * w0 * w0 + a13 * b12 * w0 + a13) * a;
        let Some((t1, t2)) = root2real(b, c) else { continue };
        for tau in [t1, t2] {
            if tau > 0.0 {
                let d = a23 / (tau * (b23 + tau) + 1.0);
                if d > 0.0 {
                    let l2 = d.sqrt();
                    let l3 = tau * l2;
                    let l1 = w0 * l2 + w1 * l3;
                    if l1 >= 0.0 {
                        depths.push(Vector3::new(l1, l2, l3));
                    }
                }
            }
        }
    }

    let xm = Matrix3::from_columns(&[d12, d13, d12xd13]);
    let Some(x_inv) = xm.try_inverse() else { return out };
    for mut l in depths {
        refine_depths(&mut l, [a12, a13, a23], [b12, b13, b23]);
        let (ry1, ry2, ry3) = (y1 * l.x, y2 * l.y, y3 * l.z);
        let yd1 = ry1 - ry2;
        let yd2 = ry1 - ry3;
        let ym = Matrix3::from_columns(&[yd1, yd2, yd1.cross(&yd2)]);
        let r = ym * x_inv;
        if !r.iter().all(|v| v.is_finite()) {
            continue;
        }
        // Small numerical drift: project onto SO(3).
        let r = crate::pose::nearest_rotation(&r).into_inner();
        let t = ry1 - r * x1;
        out.push(P3pSolution { rotation: r, translation: t });
    }
    out
}

/// Rotation angle between two rotation matrices, in degrees.
pub fn rotation_angle_deg(a: &Matrix3<f64>, b: &Matrix3<f64>) -> f64 {
    // acos of the clamped trace: rounding can push (tr − 1)/2 past 1, where acos gives NaN.
    let c = (((a * b.transpose()).trace() - 1.0) / 2.0).clamp(-1.0, 1.0);
    c.acos().to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::UnitQuaternion;

    /// Tiny deterministic RNG for tests.
    struct Lcg(u64);
    impl Lcg {
        fn f(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn r(&mut self, a: f64, b: f64) -> f64 {
            a + (b - a) * self.f()
        }
    }

    #[test]
    fn random_configurations() {
        let mut rng = Lcg(7);
        let mut errors = Vec::new();
        let mut failures = 0;
        for _ in 0..2000 {
            let axis = Vector3::new(rng.r(-1.0, 1.0), rng.r(-1.0, 1.0), rng.r(-1.0, 1.0));
            let rot = UnitQuaternion::from_scaled_axis(axis * rng.r(0.0, 3.0)).to_rotation_matrix().into_inner();
            let t = Vector3::new(rng.r(-2.0, 2.0), rng.r(-2.0, 2.0), rng.r(-2.0, 2.0));
            let mut y = [Vector3::zeros(); 3];
            let mut x = [Vector3::zeros(); 3];
            for k in 0..3 {
                let pc = Vector3::new(rng.r(-2.0, 2.0), rng.r(-1.5, 1.5), rng.r(1.0, 8.0));
                y[k] = pc.normalize();
                x[k] = rot.transpose() * (pc - t);
            }
            let sols = p3p(y, x);
            let best = sols
                .iter()
                .map(|s| (rotation_angle_deg(&s.rotation, &rot), (s.translation - t).norm()))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((r, dt)) if dt < 1e-6 => errors.push(r),
                _ => failures += 1,
            }
        }
        errors.sort_by(|a, b| a.total_cmp(b));
        let median = errors[errors.len() / 2];
        assert!(median < 1e-6, "median rotation error {median}°");
        assert!(failures <= 4, "{failures} of 2000 configurations not solved");
    }

    #[test]
    fn degenerate_inputs_fail_cleanly() {
        let y = [Vector3::new(0.0, 0.0, 1.0), Vector3::new(0.1, 0.0, 1.0), Vector3::new(0.0, 0.1, 1.0)];
        let collinear = [Vector3::new(0.0, 0.0, 0.0), Vector3::new(1.0, 0.0, 0.0), Vector3::new(2.0, 0.0, 0.0)];
        assert!(p3p(y, collinear).is_empty());
        let coincident = [Vector3::new(1.0, 1.0, 1.0); 3];
        assert!(p3p(y, coincident).is_empty());
        let nan = [Vector3::new(f64::NAN, 0.0, 0.0), Vector3::new(1.0, 0.0, 0.0), Vector3::new(0.0, 1.0, 0.0)];
        assert!(p3p(y, nan).is_empty());
        let zero_bearing = [Vector3::zeros(), y[1], y[2]];
        assert!(p3p(zero_bearing, [Vector3::x(), Vector3::y(), Vector3::z()]).is_empty());
    }
}
