//! Rays in world coordinates: where two of them pass closest, and the point nearest to many
//! (triangulation with known poses).

use nalgebra::{Matrix3, Point3, Vector3};

/// Where two rays `oa + s·ua` and `ob + t·ub` (unit directions) pass closest: `(s, t)`; `None`
/// when they are parallel. `cos` is `ua · ub`, which the caller has already checked.
pub fn closest_approach(
    oa: &Vector3<f64>,
    ua: &Vector3<f64>,
    ob: &Vector3<f64>,
    ub: &Vector3<f64>,
    cos: f64,
) -> Option<(f64, f64)> {
    let w = oa - ob;
    let (d, e) = (ua.dot(&w), ub.dot(&w));
    let denom = 1.0 - cos * cos;
    if denom <= 0.0 {
        return None;
    }
    Some(((cos * e - d) / denom, (e - cos * d) / denom))
}

/// The point with the least sum of squared distances to the rays `(origin, unit direction)`;
/// `None` when they are (nearly) parallel.
pub fn nearest_to_rays(rays: &[(Vector3<f64>, Vector3<f64>)]) -> Option<Point3<f64>> {
    let (mut a, mut b) = (Matrix3::zeros(), Vector3::zeros());
    for (o, u) in rays {
        let p = Matrix3::identity() - u * u.transpose();
        a += p;
        b += p * o;
    }
    let x = a.try_inverse()? * b;
    x.iter().all(|v| v.is_finite()).then(|| Point3::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_crossing_rays_meet_where_they_cross_and_many_at_their_common_point() {
        let target = Vector3::new(1.0, 2.0, 5.0);
        let (oa, ob) = (Vector3::new(-1.0, 0.0, 0.0), Vector3::new(2.0, 1.0, 0.0));
        let (ua, ub) = ((target - oa).normalize(), (target - ob).normalize());
        let (s, t) = closest_approach(&oa, &ua, &ob, &ub, ua.dot(&ub)).unwrap();
        assert!((oa + s * ua - target).norm() < 1e-9 && (ob + t * ub - target).norm() < 1e-9);
        assert!(closest_approach(&oa, &ua, &ob, &ua, 1.0).is_none());
        let rays = [(oa, ua), (ob, ub), (Vector3::zeros(), target.normalize())];
        assert!((nearest_to_rays(&rays).unwrap().coords - target).norm() < 1e-9);
    }
}
