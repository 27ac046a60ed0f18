//! The training loop fits a learnable mapping: random features tied to known 3-D points seen by
//! a few cameras; the reprojection error must fall to a few pixels.

use glace_mapping::buffer::{Buffer, ViewGeometry};
use glace_mapping::loss::LossConfig;
use glace_mapping::rng::Rng;
use glace_mapping::train::{train, TrainConfig};
use glace_nn::{Head, HeadConfig};
use half::f16;

#[test]
fn head_learns_a_consistent_scene() {
    let mut rng = Rng::new(3);
    let dim = 32;
    // 400 world points in front of 4 cameras looking along +z from x = −0.3..0.3.
    let points: Vec<[f32; 3]> = (0..400)
        .map(|_| [rng.range(-1.5, 1.5) as f32, rng.range(-1.0, 1.0) as f32, rng.range(2.0, 4.0) as f32])
        .collect();
    let feats: Vec<Vec<f32>> = (0..400)
        .map(|_| {
            let mut f: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            let n = f.iter().map(|v| v * v).sum::<f32>().sqrt();
            f.iter_mut().for_each(|v| *v /= n);
            f
        })
        .collect();
    let mut buf = Buffer { dim, ..Default::default() };
    for c in 0..4 {
        let cx = -0.3 + 0.2 * c as f32;
        buf.views.push(ViewGeometry {
            w2c: [1.0, 0.0, 0.0, -cx, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            k: [500.0, 500.0, 320.0, 240.0],
        });
        for (p, f) in points.iter().zip(&feats) {
            let (u, v) = (500.0 * (p[0] - cx) / p[2] + 320.0, 500.0 * p[1] / p[2] + 240.0);
            buf.features.extend(f.iter().map(|&x| f16::from_f32(x)));
            buf.pixels.push([u, v]);
            buf.view.push(c);
            buf.image.push(0);
        }
    }
    let config =
        HeadConfig { c_in: dim, channels: 128, block_channels: 128, blocks: 1, clusters: 1, homogeneous: true };
    let mut head = Head::init(config, vec![[0.0, 0.0, 0.0]], 1);
    // τ₀ = 300 as the cpu preset: with the reference's 50, the ~200 px starting errors sit in the
    // flat tail of τ·tanh(e/τ), and whether training escapes depends on the shuffle (2 of 8
    // seeds stalled at ~250 px; with 300 all 8 reach 0.01 px).
    let loss = LossConfig { soft_clamp: 300.0, ..LossConfig::default() };
    let cfg = TrainConfig {
        batch_size: 512,
        iterations: 1500,
        lr_max: 5e-3,
        noise_std: 0.0,
        loss,
        matmul: Default::default(),
    };
    let hist = train(&mut head, &buf, &[Vec::new()], 0, &cfg, &mut rng, &mut |_| true);
    let last = hist.last().unwrap();
    eprintln!("final: valid {:.2}, median error {:.2} px", last.valid, last.median_error);
    assert!(last.valid > 0.99, "valid {}", last.valid);
    assert!(last.median_error < 5.0, "median error {} px", last.median_error);
}
