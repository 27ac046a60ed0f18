//! Scene geometry for ray casting: axis-aligned boxes, seen from outside (furniture, buildings)
//! or from inside (rooms), each face with its own material. World axes: z up, metres.

use serde::Serialize;

/// How a face is textured: texture `texture` of the pool, one tile covering `tile` metres,
/// shifted by `offset` metres, multiplied by `tint`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Material {
    /// Index into the texture pool.
    pub texture: usize,
    /// Metres covered by one texture tile.
    pub tile: f64,
    /// Offset in metres along the face's two axes.
    pub offset: [f64; 2],
    /// Colour multiplier.
    pub tint: [f32; 3],
}

/// An axis-aligned box.
#[derive(Clone, Debug, Serialize)]
pub struct BoxObject {
    /// Minimum corner.
    pub min: [f64; 3],
    /// Maximum corner.
    pub max: [f64; 3],
    /// Seen from inside (a room) rather than from outside.
    pub inward: bool,
    /// Materials of faces −x, +x, −y, +y, −z, +z.
    pub faces: [Material; 6],
}

/// A light source.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum Light {
    /// A point light with intensity at 1 m.
    Point {
        /// Position.
        pos: [f64; 3],
        /// Intensity.
        intensity: f64,
    },
    /// A directional light (sun); `dir` points towards the light.
    Directional {
        /// Unit direction towards the light.
        dir: [f64; 3],
        /// Intensity.
        intensity: f64,
    },
}

/// Everything one camera can see.
#[derive(Clone, Debug, Serialize)]
pub struct World {
    /// Boxes.
    pub objects: Vec<BoxObject>,
    /// Lights.
    pub lights: Vec<Light>,
    /// Ambient light.
    pub ambient: f64,
    /// Colour of rays that hit nothing (horizon, zenith), `None` indoors.
    pub sky: Option<([f32; 3], [f32; 3])>,
}

/// A ray hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Ray parameter (the camera depth when the ray direction has unit z in the camera frame).
    pub t: f64,
    /// Index of the object.
    pub object: usize,
    /// Face 0..6 (−x, +x, −y, +y, −z, +z).
    pub face: usize,
    /// Position on the face in metres, relative to the box's minimum corner.
    pub face_uv: [f64; 2],
    /// Normal facing the viewer.
    pub normal: [f64; 3],
    /// World point.
    pub point: [f64; 3],
}

/// The two in-face axes of a face perpendicular to `axis` (z stays vertical on walls).
pub fn face_axes(axis: usize) -> (usize, usize) {
    match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

const EPS: f64 = 1e-9;

impl BoxObject {
    /// Ray intersection: nearest hit in front of the origin.
    pub fn intersect(&self, o: &[f64; 3], d: &[f64; 3]) -> Option<(f64, usize, usize)> {
        let (mut t0, mut t1) = (f64::NEG_INFINITY, f64::INFINITY);
        let (mut enter, mut exit) = (0usize, 0usize);
        for a in 0..3 {
            if d[a].abs() < 1e-15 {
                if o[a] < self.min[a] || o[a] > self.max[a] {
                    return None;
                }
                continue;
            }
            let inv = 1.0 / d[a];
            let (ta, tb) = ((self.min[a] - o[a]) * inv, (self.max[a] - o[a]) * inv);
            let (near, far) = if ta < tb { (ta, tb) } else { (tb, ta) };
            if near > t0 {
                t0 = near;
                enter = a;
            }
            if far < t1 {
                t1 = far;
                exit = a;
            }
        }
        if t0 > t1 {
            return None;
        }
        if self.inward {
            // Leaving the box: the far wall. Face side is where the ray exits.
            (t1 > EPS).then(|| (t1, exit, exit * 2 + usize::from(d[exit] > 0.0)))
        } else {
            (t0 > EPS).then(|| (t0, enter, enter * 2 + usize::from(d[enter] < 0.0)))
        }
    }
}

impl World {
    /// Nearest hit along o + t·d.
    pub fn cast(&self, o: &[f64; 3], d: &[f64; 3]) -> Option<Hit> {
        let mut best: Option<(f64, usize, usize, usize)> = None;
        for (i, obj) in self.objects.iter().enumerate() {
            if let Some((t, axis, face)) = obj.intersect(o, d) {
                if best.is_none_or(|b| t < b.0) {
                    best = Some((t, i, axis, face));
                }
            }
        }
        let (t, object, axis, face) = best?;
        let obj = &self.objects[object];
        let point = [o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]];
        let (b, c) = face_axes(axis);
        let mut normal = [0.0; 3];
        // Outward boxes: the normal of face side s points along ±axis; inward boxes point inside.
        let positive_side = face % 2 == 1;
        normal[axis] = if positive_side != obj.inward { 1.0 } else { -1.0 };
        Some(Hit { t, object, face, face_uv: [point[b] - obj.min[b], point[c] - obj.min[c]], normal, point })
    }

    /// Light arriving at a point with a normal (Lambert, no shadows).
    pub fn irradiance(&self, p: &[f64; 3], n: &[f64; 3]) -> f64 {
        let mut e = self.ambient;
        for light in &self.lights {
            match *light {
                Light::Point { pos, intensity } => {
                    let l = [pos[0] - p[0], pos[1] - p[1], pos[2] - p[2]];
                    let d2 = l[0] * l[0] + l[1] * l[1] + l[2] * l[2];
                    let d = d2.sqrt().max(1e-6);
                    let cos = (l[0] * n[0] + l[1] * n[1] + l[2] * n[2]) / d;
                    e += intensity * cos.max(0.0) / (1.0 + d2);
                }
                Light::Directional { dir, intensity } => {
                    e += intensity * (dir[0] * n[0] + dir[1] * n[1] + dir[2] * n[2]).max(0.0);
                }
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Material {
        Material { texture: 0, tile: 1.0, offset: [0.0; 2], tint: [1.0; 3] }
    }

    #[test]
    fn inside_and_outside_hits() {
        let room = BoxObject { min: [-2.0, -2.0, 0.0], max: [2.0, 2.0, 2.5], inward: true, faces: [m(); 6] };
        let cube = BoxObject { min: [1.0, -0.5, 0.0], max: [1.5, 0.5, 1.0], inward: false, faces: [m(); 6] };
        let world = World { objects: vec![room, cube], lights: vec![], ambient: 1.0, sky: None };
        // Looking along +x at height 0.5: the cube's −x face at x = 1.
        let h = world.cast(&[0.0, 0.0, 0.5], &[1.0, 0.0, 0.0]).unwrap();
        assert_eq!((h.object, h.face), (1, 0));
        assert!((h.t - 1.0).abs() < 1e-12);
        assert_eq!(h.normal, [-1.0, 0.0, 0.0]);
        // Looking along +x above the cube: the room's +x wall, normal pointing back inside.
        let h = world.cast(&[0.0, 0.0, 2.0], &[1.0, 0.0, 0.0]).unwrap();
        assert_eq!((h.object, h.face), (0, 1));
        assert!((h.t - 2.0).abs() < 1e-12);
        assert_eq!(h.normal, [-1.0, 0.0, 0.0]);
        // Straight down: the floor (−z face of the room), normal up.
        let h = world.cast(&[0.0, 0.0, 2.0], &[0.0, 0.0, -1.0]).unwrap();
        assert_eq!((h.object, h.face), (0, 4));
        assert_eq!(h.normal, [0.0, 0.0, 1.0]);
        assert_eq!(h.face_uv, [2.0, 2.0]);
    }
}
