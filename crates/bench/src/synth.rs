//! Synthetic-scene rendering: frames per second per kind at 640×480 on all threads.

use std::time::Instant;

use glace_synth::{build, Kind, SynthConfig};
use serde::Serialize;

/// One kind of synthetic scene.
#[derive(Clone, Debug, Serialize)]
pub struct SynthRow {
    /// The kind.
    pub kind: Kind,
    /// Frames rendered.
    pub frames: usize,
    /// Threads.
    pub threads: usize,
    /// Seconds building the textures.
    pub texture_build_s: f64,
    /// Frames rendered per second.
    pub render_fps: f64,
    /// Frames rendered and PNG-encoded per second.
    pub render_and_png_fps: f64,
}

/// Renders `frames` frames of each kind (room, rooms, outdoor).
pub fn synth(frames: usize) -> crate::Result<Vec<SynthRow>> {
    let mut rows = Vec::new();
    for kind in [Kind::Room, Kind::Rooms, Kind::Outdoor] {
        let mut c = SynthConfig::new(kind);
        c.frames = frames.div_ceil(if kind == Kind::Rooms { c.rooms } else { 1 });
        c.test_frames = 0;
        let t0 = Instant::now();
        let scene = build(&c).map_err(|e| glace::Error::Input(e.to_string()))?;
        let texture_build_s = t0.elapsed().as_secs_f64();
        let shots = &scene.shots[..frames.min(scene.shots.len())];
        let t1 = Instant::now();
        let rendered: Vec<_> = shots.iter().map(|s| scene.render(s)).collect();
        let render_s = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        for r in &rendered {
            let mut buf = std::io::Cursor::new(Vec::new());
            r.rgb.write_to(&mut buf, image::ImageFormat::Png).map_err(|e| glace::Error::Internal(e.to_string()))?;
        }
        let png_s = t2.elapsed().as_secs_f64();
        rows.push(SynthRow {
            kind,
            frames: shots.len(),
            threads: crate::machine::threads(),
            texture_build_s,
            render_fps: shots.len() as f64 / render_s,
            render_and_png_fps: shots.len() as f64 / (render_s + png_s),
        });
    }
    Ok(rows)
}
