//! Procedural textures, tileable, with a mip pyramid so that distant surfaces do not alias (an
//! aliased texture changes from view to view, which no relocalizer could learn).
//!
//! Every pattern carries fine noise at several scales so that any 8×8 image patch is distinctive,
//! as in real indoor scenes. A texture's `scale` divides its pattern frequencies (stripes, cells,
//! marks, detail noise): structure the size of real furnishings' (centimetres to decimetres)
//! rather than millimetre-scale noise, which at 8 px cells looks alike everywhere.

use rayon::prelude::*;
use serde::Serialize;

use crate::rng::{hash, unit, Rng};

/// The kinds of pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Multi-scale coloured value noise.
    Noise,
    /// Warped stripes of several colours.
    Stripes,
    /// Checker cells with per-cell colours.
    Checker,
    /// Discs of random colours on noise.
    Blobs,
    /// Glyph-like strokes on a light background (posters, books, labels).
    Glyphs,
    /// Floor tiles with grout.
    Tiles,
    /// Wood-like rings.
    Wood,
    /// Building facade with a repeated window grid.
    Facade,
    /// Paving stones.
    Pavement,
}

struct Level {
    size: usize,
    texels: Vec<[f32; 3]>,
}

/// A square tileable texture with its mip pyramid.
pub struct Texture {
    /// Pattern it was generated from.
    pub pattern: Pattern,
    levels: Vec<Level>,
}

fn value_noise(seed: u64, freq: u64, u: f64, v: f64) -> f64 {
    let (x, y) = (u * freq as f64, v * freq as f64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let at = |dx: i64, dy: i64| {
        let gx = (ix + dx).rem_euclid(freq as i64) as u64;
        let gy = (iy + dy).rem_euclid(freq as i64) as u64;
        unit(hash(&[seed, freq, gx, gy]))
    };
    let a = at(0, 0) + (at(1, 0) - at(0, 0)) * sx;
    let b = at(0, 1) + (at(1, 1) - at(0, 1)) * sx;
    a + (b - a) * sy
}

/// Fractal noise in [0, 1], tileable over the unit square.
fn fbm(seed: u64, base: u64, octaves: u32, u: f64, v: f64) -> f64 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, base);
    for o in 0..octaves {
        sum += amp * value_noise(seed.wrapping_add(o as u64), f, u, v);
        norm += amp;
        amp *= 0.55;
        f *= 2;
    }
    sum / norm
}

fn lerp3(a: [f64; 3], b: [f64; 3], t: f64) -> [f64; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

fn random_colour(rng: &mut Rng) -> [f64; 3] {
    [rng.range(0.1, 0.95), rng.range(0.1, 0.95), rng.range(0.1, 0.95)]
}

/// Colour ramp through a palette.
fn ramp(palette: &[[f64; 3]], t: f64) -> [f64; 3] {
    let t = t.clamp(0.0, 1.0) * (palette.len() - 1) as f64;
    let i = (t.floor() as usize).min(palette.len() - 2);
    lerp3(palette[i], palette[i + 1], t - i as f64)
}

/// Distance on the unit torus.
fn wrap_d(a: f64) -> f64 {
    let a = a.rem_euclid(1.0);
    a.min(1.0 - a)
}

fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

impl Texture {
    /// Generates a `size`×`size` texture (size a power of two) whose pattern features are
    /// `scale` (≥ 1) times larger than the base pattern's.
    pub fn generate(pattern: Pattern, seed: u64, size: usize, scale: u32) -> Texture {
        assert!(size.is_power_of_two() && size >= 8);
        let feature_scale = scale.max(1) as u64;
        let mut rng = Rng::new(seed);
        let palette: Vec<[f64; 3]> = (0..4).map(|_| random_colour(&mut rng)).collect();
        let s = rng.next_u64();
        let mut base: Vec<[f32; 3]> = (0..size * size)
            .into_par_iter()
            .map(|k| {
                let (u, v) = ((k % size) as f64 / size as f64, (k / size) as f64 / size as f64);
                let c = base_pattern(pattern, s, feature_scale, &palette, u, v);
                // Fine multi-scale detail everywhere, so every patch is distinctive; coarsened by
                // (scale + 1) / 2 only, so that scaled textures keep detail within an 8 px cell.
                let d = fbm(s ^ 0xD1, (size as u64 / (8 * (feature_scale + 1))).max(1), 3, u, v) - 0.5;
                [(c[0] * (1.0 + 0.35 * d)) as f32, (c[1] * (1.0 + 0.35 * d)) as f32, (c[2] * (1.0 + 0.35 * d)) as f32]
            })
            .collect();
        overlay_shapes(pattern, feature_scale, &mut rng, &palette, size, &mut base);
        for t in &mut base {
            for c in t.iter_mut() {
                *c = c.clamp(0.0, 1.0);
            }
        }
        let mut levels = vec![Level { size, texels: base }];
        while levels.last().unwrap().size > 4 {
            let prev = levels.last().unwrap();
            let n = prev.size / 2;
            let texels = (0..n * n)
                .map(|k| {
                    let (x, y) = (2 * (k % n), 2 * (k / n));
                    let mut acc = [0f32; 3];
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let t = prev.texels[(y + dy) * prev.size + x + dx];
                        for c in 0..3 {
                            acc[c] += 0.25 * t[c];
                        }
                    }
                    acc
                })
                .collect();
            levels.push(Level { size: n, texels });
        }
        Texture { pattern, levels }
    }

    /// Texels along one side at full resolution.
    pub fn size(&self) -> usize {
        self.levels[0].size
    }

    fn bilinear(level: &Level, u: f64, v: f64) -> [f32; 3] {
        let n = level.size;
        let x = u.rem_euclid(1.0) * n as f64 - 0.5;
        let y = v.rem_euclid(1.0) * n as f64 - 0.5;
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
        let xi = (x0 as i64).rem_euclid(n as i64) as usize;
        let yi = (y0 as i64).rem_euclid(n as i64) as usize;
        let (x1, y1) = ((xi + 1) % n, (yi + 1) % n);
        let t = &level.texels;
        let (a, b, c, d) = (t[yi * n + xi], t[yi * n + x1], t[y1 * n + xi], t[y1 * n + x1]);
        let mut out = [0f32; 3];
        for k in 0..3 {
            let top = a[k] + (b[k] - a[k]) * fx;
            let bottom = c[k] + (d[k] - c[k]) * fx;
            out[k] = top + (bottom - top) * fy;
        }
        out
    }

    /// Trilinear sample at texture coordinates (u, v) (1.0 = one tile) for a pixel footprint of
    /// `footprint` tiles.
    pub fn sample(&self, u: f64, v: f64, footprint: f64) -> [f32; 3] {
        let texels = footprint * self.size() as f64;
        let lod = if texels > 1.0 { texels.log2() } else { 0.0 };
        let max = (self.levels.len() - 1) as f64;
        let lod = lod.min(max);
        let l0 = lod.floor() as usize;
        let a = Self::bilinear(&self.levels[l0], u, v);
        let f = (lod - l0 as f64) as f32;
        if f <= 0.0 || l0 + 1 >= self.levels.len() {
            return a;
        }
        let b = Self::bilinear(&self.levels[l0 + 1], u, v);
        [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
    }
}

/// Pattern colour at (u, v); integer frequencies are divided by `k` (at least 1 period per tile)
/// so the texture stays tileable.
fn base_pattern(pattern: Pattern, s: u64, k: u64, palette: &[[f64; 3]], u: f64, v: f64) -> [f64; 3] {
    let f = |freq: u64| (freq / k).max(1);
    match pattern {
        Pattern::Noise | Pattern::Blobs | Pattern::Glyphs => {
            let n = fbm(s, f(4), 7, u, v);
            let c = ramp(palette, (n - 0.2) / 0.6);
            if pattern == Pattern::Glyphs {
                lerp3([0.92, 0.9, 0.85], c, 0.25)
            } else {
                c
            }
        }
        Pattern::Stripes => {
            let bands = f(24) as f64;
            let w = fbm(s, f(4), 4, u, v);
            let t = v * bands + 3.0 * w * bands / 24.0;
            let band = t.floor().rem_euclid(bands) as u64;
            let c = ramp(palette, unit(hash(&[s, band])));
            let edge = (t.fract() - 0.5).abs();
            if edge > 0.46 {
                lerp3(c, [0.1, 0.1, 0.1], 0.6)
            } else {
                c
            }
        }
        Pattern::Checker => {
            let cells = f(16) as f64;
            let (cx, cy) = ((u * cells).floor() as u64, (v * cells).floor() as u64);
            let c = ramp(palette, unit(hash(&[s, cx, cy])));
            let n = fbm(s ^ 7, f(8), 5, u, v);
            let (fx, fy) = ((u * cells).fract(), (v * cells).fract());
            let c = lerp3(c, [n, n, n], 0.3);
            if fx < 0.04 || fy < 0.04 {
                lerp3(c, [0.05, 0.05, 0.05], 0.7)
            } else {
                c
            }
        }
        Pattern::Tiles | Pattern::Pavement => {
            // Tiles: 8 per tile at scale 1; 12 / scale above it, as 8 / 3 would leave two huge tiles.
            let cells = if pattern == Pattern::Tiles { f(12).min(8) as f64 } else { f(24) as f64 };
            let row = (v * cells).floor();
            let shift = if pattern == Pattern::Pavement && row as u64 % 2 == 1 { 0.5 } else { 0.0 };
            let (tu, tv) = (u * cells + shift, v * cells);
            let (cx, cy) = (tu.floor().rem_euclid(cells) as u64, tv.floor() as u64);
            let base = ramp(palette, 0.3 + 0.4 * unit(hash(&[s, cx, cy])));
            let n = fbm(s ^ 3, f(16), 5, u, v);
            let c = lerp3(base, [n, n * 0.95, n * 0.9], 0.35);
            if tu.fract() < 0.05 || tv.fract() < 0.05 {
                [0.25, 0.24, 0.22]
            } else {
                c
            }
        }
        Pattern::Wood => {
            let rings_per_tile = f(30) as f64;
            let w = fbm(s, f(4), 5, u, v);
            let rings =
                ((u * rings_per_tile + 6.0 * w * rings_per_tile / 30.0) * std::f64::consts::TAU).sin() * 0.5 + 0.5;
            lerp3([0.45, 0.28, 0.14], [0.75, 0.55, 0.32], rings * 0.8 + 0.2 * fbm(s ^ 9, f(64), 3, u, v))
        }
        Pattern::Facade => {
            // 4 windows across, 4 floors per tile: the tile repeats along the facade.
            let (wx, wy) = (u * 4.0, v * 4.0);
            let (ix, iy) = (wx.floor() as u64, wy.floor() as u64);
            let (fx, fy) = (wx.fract(), wy.fract());
            let wall = lerp3(palette[0], [0.8, 0.78, 0.72], 0.5);
            let n = fbm(s, 8, 6, u, v);
            let wall = lerp3(wall, [n, n, n], 0.25);
            let in_window = (0.25..0.75).contains(&fx) && (0.2..0.8).contains(&fy);
            let in_frame = (0.22..0.78).contains(&fx) && (0.17..0.83).contains(&fy);
            if in_window {
                let curtain = unit(hash(&[s, ix, iy]));
                let glass = lerp3([0.12, 0.16, 0.22], [0.55, 0.6, 0.7], 0.6 * fbm(s ^ 5, 16, 4, u, v));
                if fy > 0.2 + 0.6 * curtain {
                    lerp3(glass, palette[1], 0.7)
                } else {
                    glass
                }
            } else if in_frame {
                [0.9, 0.9, 0.88]
            } else {
                wall
            }
        }
    }
}

/// Discs and glyph strokes, rasterised shape by shape inside their bounding boxes.
fn overlay_shapes(pattern: Pattern, k: u64, rng: &mut Rng, palette: &[[f64; 3]], size: usize, texels: &mut [[f32; 3]]) {
    let n = size as f64;
    // k times larger marks, k² fewer: the same coverage.
    let (kf, count) = (k as f64, |c: usize| (c / (k * k) as usize).max(1));
    let mut paint = |cx: f64, cy: f64, r: f64, colour: [f64; 3], inside: &dyn Fn(f64, f64) -> bool| {
        let (x0, x1) = (((cx - r) * n).floor() as i64, ((cx + r) * n).ceil() as i64);
        let (y0, y1) = (((cy - r) * n).floor() as i64, ((cy + r) * n).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (u, v) = ((x as f64 + 0.5) / n, (y as f64 + 0.5) / n);
                if inside(u, v) {
                    let k = (y.rem_euclid(size as i64) as usize) * size + x.rem_euclid(size as i64) as usize;
                    texels[k] = [colour[0] as f32, colour[1] as f32, colour[2] as f32];
                }
            }
        }
    };
    match pattern {
        Pattern::Blobs => {
            for _ in 0..count(220) {
                let (cx, cy, r) = (rng.f64(), rng.f64(), kf * rng.range(0.006, 0.04));
                let colour = if rng.f64() < 0.5 { random_colour(rng) } else { ramp(palette, rng.f64()) };
                paint(cx, cy, r, colour, &|u, v| (wrap_d(u - cx).powi(2) + wrap_d(v - cy).powi(2)).sqrt() < r);
            }
        }
        Pattern::Glyphs => {
            for _ in 0..count(900) {
                let (cx, cy, r) = (rng.f64(), rng.f64(), kf * rng.range(0.004, 0.012));
                let colour = [rng.range(0.0, 0.4), rng.range(0.0, 0.4), rng.range(0.0, 0.5)];
                let strokes: Vec<((f64, f64), (f64, f64))> = (0..rng.below(3) + 2)
                    .map(|_| {
                        let mut p = || (cx + rng.range(-r, r), cy + rng.range(-r, r));
                        (p(), p())
                    })
                    .collect();
                let width = r * 0.18;
                paint(cx, cy, r * 1.3, colour, &|u, v| {
                    let p = (cx + (u - cx + 0.5).rem_euclid(1.0) - 0.5, cy + (v - cy + 0.5).rem_euclid(1.0) - 0.5);
                    strokes.iter().any(|&(a, b)| segment_distance(p, a, b) < width)
                });
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean absolute luminance step between neighbouring texels of the full-resolution level.
    fn roughness(t: &Texture) -> f64 {
        let l = &t.levels[0];
        let lum = |p: [f32; 3]| (p[0] + p[1] + p[2]) as f64 / 3.0;
        let mut sum = 0.0;
        for y in 0..l.size {
            for x in 0..l.size {
                let a = lum(l.texels[y * l.size + x]);
                sum += (a - lum(l.texels[y * l.size + (x + 1) % l.size])).abs();
                sum += (a - lum(l.texels[((y + 1) % l.size) * l.size + x])).abs();
            }
        }
        sum / (2 * l.size * l.size) as f64
    }

    #[test]
    fn feature_scale_coarsens_indoor_patterns_and_keeps_them_tileable() {
        use Pattern::*;
        for pattern in [Noise, Stripes, Checker, Blobs, Glyphs, Tiles, Wood] {
            let fine = Texture::generate(pattern, 7, 256, 1);
            let coarse = Texture::generate(pattern, 7, 256, 3);
            let (rf, rc) = (roughness(&fine), roughness(&coarse));
            assert!(rc < 0.8 * rf, "{pattern:?}: texel steps {rc:.4} at scale 3 vs {rf:.4} at scale 1");
            // Tileable: the step across the wrap is like the texture's typical steps (checker and
            // tile textures put a grout line on the wrap, which is tileable too).
            if matches!(pattern, Checker | Tiles) {
                continue;
            }
            let l = &coarse.levels[0];
            let n = l.size;
            let wrap: f64 = (0..n)
                .map(|y| {
                    (0..3).map(|c| (l.texels[y * n + n - 1][c] - l.texels[y * n][c]).abs() as f64).sum::<f64>() / 3.0
                })
                .sum::<f64>()
                / n as f64;
            assert!(wrap < 4.0 * rc + 0.02, "{pattern:?}: seam step {wrap:.4} vs {rc:.4}");
        }
    }
}
