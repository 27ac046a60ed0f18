//! The three kinds of synthetic scene: one room, integrated rooms sharing a small pool of
//! textures and furniture, and an outdoor courtyard of facades with repeated windows.

use serde::Serialize;

use crate::rng::Rng;
use crate::texture::Pattern;
use crate::trajectory::LoopSpec;
use crate::world::{BoxObject, Light, Material, World};

/// A texture to generate.
#[derive(Clone, Debug, Serialize)]
pub struct TextureSpec {
    /// Pattern.
    pub pattern: Pattern,
    /// Generator seed.
    pub seed: u64,
    /// Pattern feature scale (see `Texture::generate`).
    pub scale: u32,
}

/// Feature scale of indoor textures: stripes, cells and marks of centimetres to decimetres at the
/// tile sizes used here (millimetre-scale patterns localize far worse: docs/experiments.md).
const INDOOR_SCALE: u32 = 3;

/// One place cameras move through (a room, or the whole courtyard).
#[derive(Clone, Debug, Serialize)]
pub struct Place {
    /// What the cameras there see.
    pub world: World,
    /// Train loop.
    pub train_loop: LoopSpec,
    /// Test loop.
    pub test_loop: LoopSpec,
    /// Keys of the materials used (texture and offset), to measure repetition across places.
    pub material_keys: Vec<String>,
    /// Furniture designs placed here.
    pub furniture: Vec<usize>,
}

fn material(texture: usize, tile: f64, offset: [f64; 2], rng: Option<&mut Rng>) -> Material {
    let tint = match rng {
        Some(r) => [r.range(0.85, 1.15) as f32, r.range(0.85, 1.15) as f32, r.range(0.85, 1.15) as f32],
        None => [1.0; 3],
    };
    Material { texture, tile, offset, tint }
}

fn key(m: &Material) -> String {
    format!("t{}@{:.2},{:.2}", m.texture, m.offset[0], m.offset[1])
}

/// Furniture: size (along the wall, depth, height) and one material per face.
#[derive(Clone, Debug)]
struct Design {
    size: [f64; 3],
    faces: [Material; 6],
}

const DESIGN_SIZES: [[f64; 3]; 6] = [
    [1.4, 0.7, 0.75], // desk
    [1.0, 0.35, 1.9], // shelf
    [0.6, 0.5, 1.0],  // cabinet
    [1.8, 0.8, 0.8],  // sofa
    [0.5, 0.5, 0.5],  // crate
    [1.0, 0.9, 0.7],  // table
];

fn design(rng: &mut Rng, size: [f64; 3], textures: &[usize], random_offsets: bool) -> Design {
    let mut faces = [material(0, 1.0, [0.0; 2], None); 6];
    let t = textures[rng.below(textures.len())];
    for f in faces.iter_mut() {
        let offset = if random_offsets { [rng.range(0.0, 2.0), rng.range(0.0, 2.0)] } else { [0.0; 2] };
        *f = material(t, 2.0, offset, Some(rng));
    }
    Design { size, faces }
}

/// Places designs against the walls of a room [min, max] without overlaps.
fn furnish(rng: &mut Rng, min: [f64; 3], max: [f64; 3], designs: &[(usize, Design)]) -> (Vec<BoxObject>, Vec<usize>) {
    let mut placed: Vec<BoxObject> = Vec::new();
    let mut ids = Vec::new();
    for (id, d) in designs {
        for _ in 0..60 {
            let wall = rng.below(4);
            let (along, depth, h) = (d.size[0], d.size[1], d.size[2]);
            // Walls −x/+x run along y, walls −y/+y along x.
            let lo = if wall < 2 { [min[1], max[1]] } else { [min[0], max[0]] };
            let pos = rng.range(lo[0] + 0.1, lo[1] - 0.1 - along);
            let (bmin, bmax) = match wall {
                0 => ([min[0], pos, min[2]], [min[0] + depth, pos + along, min[2] + h]),
                1 => ([max[0] - depth, pos, min[2]], [max[0], pos + along, min[2] + h]),
                2 => ([pos, min[1], min[2]], [pos + along, min[1] + depth, min[2] + h]),
                _ => ([pos, max[1] - depth, min[2]], [pos + along, max[1], min[2] + h]),
            };
            let overlaps =
                placed.iter().any(|o| (0..2).all(|a| bmin[a] < o.max[a] + 0.05 && o.min[a] < bmax[a] + 0.05));
            if !overlaps {
                placed.push(BoxObject { min: bmin, max: bmax, inward: false, faces: d.faces });
                ids.push(*id);
                break;
            }
        }
    }
    (placed, ids)
}

fn room_loops(centre: [f64; 2]) -> (LoopSpec, LoopSpec) {
    let train = LoopSpec {
        centre,
        radii: [0.85, 1.15],
        height: [1.2, 1.7],
        pitch_deg: -12.0,
        sweep_deg: 70.0,
        sweep_cycles: 3.0,
        jitter_m: 0.01,
        jitter_deg: 0.7,
        direction: 1.0,
        turns: 1.0,
        inward: false,
        radius_wobble: 0.0,
    };
    let test = LoopSpec {
        radii: [0.6, 0.9],
        height: [1.3, 1.6],
        pitch_deg: -8.0,
        sweep_cycles: 4.0,
        direction: -1.0,
        ..train.clone()
    };
    (train, test)
}

fn room_box(min: [f64; 3], max: [f64; 3], faces: [Material; 6]) -> BoxObject {
    BoxObject { min, max, inward: true, faces }
}

fn room_lights(c: [f64; 2]) -> Vec<Light> {
    vec![
        Light::Point { pos: [c[0] - 1.0, c[1] - 1.2, 2.3], intensity: 3.2 },
        Light::Point { pos: [c[0] + 1.2, c[1] + 1.5, 2.3], intensity: 2.8 },
    ]
}

/// A single furnished room, about 4 × 5 × 2.5 m, every surface with its own texture.
pub fn room(seed: u64) -> (Vec<TextureSpec>, Vec<Place>) {
    let mut rng = Rng::new(seed).fork(1);
    use Pattern::*;
    let patterns = [Glyphs, Blobs, Stripes, Checker, Tiles, Noise, Wood, Noise, Blobs, Glyphs, Checker, Stripes];
    let textures: Vec<TextureSpec> =
        patterns.iter().map(|&pattern| TextureSpec { pattern, seed: rng.next_u64(), scale: INDOOR_SCALE }).collect();
    let (min, max) = ([-2.0, -2.5, 0.0], [2.0, 2.5, 2.5]);
    // One tile spans the longest wall, so no wall shows a texture twice.
    let mut faces = [material(0, 5.0, [0.0; 2], None); 6];
    for (f, t) in faces.iter_mut().zip([0, 1, 2, 3, 4, 5]) {
        *f = material(t, 5.0, [rng.range(0.0, 5.0), rng.range(0.0, 5.0)], None);
    }
    let designs: Vec<(usize, Design)> =
        DESIGN_SIZES.iter().enumerate().map(|(i, &s)| (i, design(&mut rng, s, &[6, 7, 8, 9, 10, 11], true))).collect();
    let (furniture, ids) = furnish(&mut rng, min, max, &designs);
    let mut objects = vec![room_box(min, max, faces)];
    objects.extend(furniture);
    let keys = objects.iter().flat_map(|o| o.faces.iter().map(key)).collect();
    let (train_loop, test_loop) = room_loops([0.0, 0.0]);
    let world = World { objects, lights: room_lights([0.0, 0.0]), ambient: 0.3, sky: None };
    (textures, vec![Place { world, train_loop, test_loop, material_keys: keys, furniture: ids }])
}

/// The desk's centre objects (minimum and maximum corner, relative to the room centre).
const CENTRE_OBJECTS: [([f64; 3], [f64; 3]); 5] = [
    ([-0.7, -0.45, 0.0], [0.7, 0.45, 0.75]),  // table
    ([-0.55, -0.3, 0.75], [-0.1, 0.1, 1.05]), // box on the table
    ([0.15, -0.05, 0.75], [0.45, 0.35, 1.2]), // taller box
    ([0.9, -0.3, 0.0], [1.3, 0.2, 0.5]),      // crate beside it
    ([-1.2, 0.2, 0.0], [-0.85, 0.6, 0.9]),    // cabinet
];

/// One set of face materials per centre object, every face its own new texture, one tile larger
/// than the face: objects on a desk do not repeat each other's surfaces (shared textures
/// localize worse: docs/experiments.md).
fn centre_faces(rng: &mut Rng, textures: &mut Vec<TextureSpec>) -> Vec<[Material; 6]> {
    use Pattern::*;
    let pool = [Wood, Noise, Blobs, Glyphs, Checker, Stripes];
    (0..CENTRE_OBJECTS.len())
        .map(|k| {
            let mut faces = [material(0, 1.5, [0.0; 2], None); 6];
            for f in faces.iter_mut() {
                let pattern = pool[(k + rng.below(pool.len())) % pool.len()];
                textures.push(TextureSpec { pattern, seed: rng.next_u64(), scale: INDOOR_SCALE });
                *f = material(textures.len() - 1, 1.5, [0.0; 2], Some(rng));
            }
            faces
        })
        .collect()
}

/// The centre objects with their faces, around room centre `c`.
fn centre_objects(c: [f64; 2], faces: &[[Material; 6]]) -> impl Iterator<Item = BoxObject> + '_ {
    CENTRE_OBJECTS.iter().zip(faces).map(move |((lo, hi), faces)| BoxObject {
        min: [lo[0] + c[0], lo[1] + c[1], lo[2]],
        max: [hi[0] + c[0], hi[1] + c[1], hi[2]],
        inward: false,
        faces: *faces,
    })
}

/// Orbit loops around a furnished centre, looking inward. Training: two turns whose distance
/// varies by ±12 %, bracketing the test loop, as several capture sequences of one place do.
fn orbit_loops(centre: [f64; 2]) -> (LoopSpec, LoopSpec) {
    let inward =
        |radii: [f64; 2], height: [f64; 2], direction: f64, sweep_cycles: f64, turns: f64, wobble: f64| LoopSpec {
            centre,
            radii,
            height,
            pitch_deg: -28.0,
            sweep_deg: 18.0,
            sweep_cycles,
            jitter_m: 0.01,
            jitter_deg: 0.7,
            direction,
            turns,
            inward: true,
            radius_wobble: wobble,
        };
    (inward([1.75, 2.05], [1.3, 1.8], 1.0, 6.0, 2.0, 0.12), inward([1.6, 1.9], [1.4, 1.7], -1.0, 4.0, 1.0, 0.0))
}

/// The same room with a furnished centre (a table with objects), the cameras orbiting it and
/// looking inward, as hand-held clips of a desk or a corner are captured (TUM fr2/desk, 7-Scenes):
/// the surface to learn is a fraction of the whole room's.
pub fn desk(seed: u64) -> (Vec<TextureSpec>, Vec<Place>) {
    let (mut textures, mut places) = room(seed);
    let mut rng = Rng::new(seed).fork(2);
    let place = &mut places[0];
    for object in centre_objects([0.0, 0.0], &centre_faces(&mut rng, &mut textures)) {
        place.material_keys.extend(object.faces.iter().map(key));
        place.world.objects.push(object);
    }
    (place.train_loop, place.test_loop) = orbit_loops([0.0, 0.0]);
    (textures, places)
}

/// Spacing of the `rooms` grid in metres.
pub const ROOM_SPACING: f64 = 5.0;

/// Rooms per row of the `rooms` grid for `count` rooms.
pub fn rooms_per_row(count: usize) -> usize {
    (count as f64).sqrt().ceil() as usize
}

/// Width in metres of the square the `rooms` grid of `count` rooms fills.
pub fn rooms_width(count: usize) -> f64 {
    ROOM_SPACING * rooms_per_row(count) as f64
}

/// `count` rooms on a grid of 5 m cells (room i at (−5·row, −5·col, 0), as the reference places
/// i12/i19), furnished from one catalogue as offices of one building are: every room has the
/// desk's table and objects at the same place (the same textures everywhere) and shared furniture
/// in its own arrangement against its walls. The walls use shared patterns in a room-specific
/// order under the room's own paint, and the floor has the room's own colour. Locally the rooms
/// look alike; only whole views tell them apart. Cameras orbit each room's table as in `desk`.
pub fn rooms(seed: u64, count: usize) -> (Vec<TextureSpec>, Vec<Place>) {
    let mut rng = Rng::new(seed).fork(2);
    use Pattern::*;
    let patterns = [Glyphs, Blobs, Stripes, Checker, Noise, Wood, Tiles, Noise];
    let mut textures: Vec<TextureSpec> =
        patterns.iter().map(|&pattern| TextureSpec { pattern, seed: rng.next_u64(), scale: INDOOR_SCALE }).collect();
    // Furniture designs shared by every room, with fixed texture placement, so they look identical.
    let designs: Vec<(usize, Design)> =
        DESIGN_SIZES.iter().enumerate().take(4).map(|(i, &s)| (i, design(&mut rng, s, &[1, 3, 5, 7], false))).collect();
    let centre_set = centre_faces(&mut rng, &mut textures);
    let grid = rooms_per_row(count);
    let places = (0..count)
        .map(|i| {
            let c = [-ROOM_SPACING * (i / grid) as f64, -ROOM_SPACING * (i % grid) as f64];
            let (min, max) = ([c[0] - 2.0, c[1] - 2.5, 0.0], [c[0] + 2.0, c[1] + 2.5, 2.5]);
            // Walls take 4 of 5 shared wall patterns, in a room-specific order; floor, ceiling
            // and furniture are the same everywhere. Local appearance repeats, whole rooms differ.
            let mut wall_textures = [0usize, 1, 2, 3, 4];
            for k in (1..wall_textures.len()).rev() {
                wall_textures.swap(k, rng.below(k + 1));
            }
            // Each room has its own paint colour over the shared wall patterns, as real rooms do.
            let paint = [rng.range(0.4, 1.5) as f32, rng.range(0.4, 1.5) as f32, rng.range(0.4, 1.5) as f32];
            let mut faces = [material(6, 5.0, [0.0; 2], None); 6];
            for (w, f) in faces.iter_mut().take(4).enumerate() {
                *f = Material { tint: paint, ..material(wall_textures[w], 5.0, [0.0; 2], None) };
            }
            // And its own floor colour (carpet or paint) over the shared tile pattern.
            let floor = [rng.range(0.5, 1.4) as f32, rng.range(0.5, 1.4) as f32, rng.range(0.5, 1.4) as f32];
            faces[4].tint = floor;
            faces[5] = material(7, 5.0, [0.0; 2], None);
            let mut chosen = designs.clone();
            for k in (1..chosen.len()).rev() {
                chosen.swap(k, rng.below(k + 1));
            }
            let (furniture, ids) = furnish(&mut rng, min, max, &chosen);
            let mut objects = vec![room_box(min, max, faces)];
            objects.extend(furniture);
            // The same table and objects at the same place in every room.
            objects.extend(centre_objects(c, &centre_set));
            let keys = objects.iter().flat_map(|o| o.faces.iter().map(key)).collect();
            let (train_loop, test_loop) = orbit_loops(c);
            let world = World { objects, lights: room_lights(c), ambient: 0.3, sky: None };
            Place { world, train_loop, test_loop, material_keys: keys, furniture: ids }
        })
        .collect();
    (textures, places)
}

/// A courtyard about 90 × 60 m enclosed by buildings with repeated window patterns, more
/// buildings beyond the gaps, paved ground and sky.
pub fn outdoor(seed: u64) -> (Vec<TextureSpec>, Vec<Place>) {
    let mut rng = Rng::new(seed).fork(3);
    use Pattern::*;
    let patterns = [Facade, Facade, Facade, Facade, Pavement, Noise];
    // Facades and paving are already at their real scale.
    let textures: Vec<TextureSpec> =
        patterns.iter().map(|&pattern| TextureSpec { pattern, seed: rng.next_u64(), scale: 1 }).collect();
    let ground_faces = [material(4, 8.0, [0.0; 2], None); 6];
    let mut objects =
        vec![BoxObject { min: [-300.0, -300.0, -1.0], max: [300.0, 300.0, 0.0], inward: false, faces: ground_faces }];
    let mut building = |rng: &mut Rng, a: [f64; 2], b: [f64; 2]| {
        let t = rng.below(4);
        let mut faces = [material(t, 14.0, [0.0; 2], None); 6];
        for f in faces.iter_mut() {
            *f = material(t, 14.0, [rng.range(0.0, 14.0), 0.0], Some(rng));
        }
        faces[5] = material(5, 10.0, [0.0; 2], None);
        let h = rng.range(10.0, 28.0);
        objects.push(BoxObject {
            min: [a[0].min(b[0]), a[1].min(b[1]), 0.0],
            max: [a[0].max(b[0]), a[1].max(b[1]), h],
            inward: false,
            faces,
        });
    };
    for ring in [(45.0, 30.0, 10.0, 16.0), (95.0, 80.0, 12.0, 20.0)] {
        let (hx, hy, dmin, dmax) = ring;
        for side in 0..4 {
            let half = if side < 2 { hy + dmax } else { hx + dmax };
            let mut s = -half;
            while s < half {
                let len = rng.range(12.0, 25.0).min(half - s);
                let depth = rng.range(dmin, dmax);
                let (a, b) = match side {
                    0 => ([hx, s], [hx + depth, s + len]),
                    1 => ([-hx - depth, s], [-hx, s + len]),
                    2 => ([s, hy], [s + len, hy + depth]),
                    _ => ([s, -hy - depth], [s + len, -hy]),
                };
                if len > 4.0 {
                    building(&mut rng, a, b);
                }
                s += len + if rng.f64() < 0.3 { rng.range(6.0, 12.0) } else { 0.0 };
            }
        }
    }
    let keys = objects.iter().flat_map(|o| o.faces.iter().map(key)).collect();
    let train_loop = LoopSpec {
        centre: [0.0, 0.0],
        radii: [30.0, 18.0],
        height: [1.5, 1.8],
        pitch_deg: 8.0,
        sweep_deg: 60.0,
        sweep_cycles: 5.0,
        jitter_m: 0.03,
        jitter_deg: 0.7,
        direction: 1.0,
        turns: 1.0,
        inward: false,
        radius_wobble: 0.0,
    };
    let test_loop = LoopSpec { radii: [24.0, 13.0], sweep_cycles: 6.0, direction: -1.0, ..train_loop.clone() };
    let sun = Light::Directional { dir: [0.4082, 0.4082, 0.8165], intensity: 0.75 };
    let world = World { objects, lights: vec![sun], ambient: 0.45, sky: Some(([0.8, 0.85, 0.9], [0.35, 0.55, 0.85])) };
    (textures, vec![Place { world, train_loop, test_loop, material_keys: keys, furniture: vec![] }])
}
