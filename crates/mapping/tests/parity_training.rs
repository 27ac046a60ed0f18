//! Parity of the loss, its gradient, the LR schedule and AdamW with the reference
//! (`shared/fixtures/loss.npz`, `schedule_optimizer.npz`).

use std::path::Path;

use glace_data::testing::shared_path;
use glace_mapping::loss::{reprojection_loss, tau, LossConfig, SampleGeometry};
use glace_mapping::optim::{AdamW, AdamWState, OneCycle};

fn npz<T: npyz::Deserialize>(path: &Path, name: &str) -> Vec<T> {
    let mut z = npyz::npz::NpzArchive::open(path).unwrap();
    z.by_name(name).unwrap().unwrap_or_else(|| panic!("{name} missing")).into_vec().unwrap()
}

#[test]
fn parity_loss_and_gradient() {
    let Some(fix) = shared_path("fixtures/loss.npz", "parity_loss_and_gradient") else { return };
    let pred: Vec<f32> = npz(&fix, "pred_scene_coords");
    let px: Vec<f32> = npz(&fix, "target_px");
    let poses: Vec<f32> = npz(&fix, "gt_poses_inv");
    let k: Vec<f32> = npz(&fix, "intrinsics");
    let b = px.len() / 2;
    let geo: Vec<SampleGeometry> = (0..b)
        .map(|i| SampleGeometry {
            w2c: poses[i * 12..(i + 1) * 12].try_into().unwrap(),
            k: [k[i * 9], k[i * 9 + 4], k[i * 9 + 2], k[i * 9 + 5]],
            px: [px[2 * i], px[2 * i + 1]],
            depth: f32::NAN,
        })
        .collect();
    let cfg = LossConfig::default();
    for it in [0usize, 1000, 15000, 29999] {
        let t = tau(&cfg, it, 30000);
        let tau_ref: Vec<f64> = npz(&fix, &format!("tau_it{it}"));
        assert!((t - tau_ref[0]).abs() < 1e-9, "tau at {it}");
        let out = reprojection_loss(&cfg, &pred, &geo, t);
        let loss_ref: Vec<f32> = npz(&fix, &format!("loss_it{it}"));
        let rel = (out.loss - loss_ref[0] as f64).abs() / loss_ref[0] as f64;
        assert!(rel < 1e-6, "loss at {it}: {} vs {} (rel {rel:e})", out.loss, loss_ref[0]);
        let valid_ref: Vec<bool> = npz(&fix, &format!("valid_it{it}"));
        assert_eq!(out.valid, valid_ref, "validity at {it}");
        let g_ref: Vec<f32> = npz(&fix, &format!("grad_it{it}"));
        let gmax = g_ref.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = out.grad.iter().zip(&g_ref).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err <= 1e-3 * gmax, "gradient at {it}: max error {err:e} (max |g| {gmax})");
    }
}

#[test]
fn parity_one_cycle_schedule() {
    let Some(fix) = shared_path("fixtures/schedule_optimizer.npz", "parity_one_cycle_schedule") else { return };
    let all: Vec<f64> = npz(&fix, "lr_all_f64");
    let sched = OneCycle::reference(30000);
    for (s, r) in all.iter().enumerate() {
        let ours = sched.lr(s);
        assert!((ours - r).abs() <= 1e-9 * r.abs(), "step {s}: {ours:e} vs {r:e}");
    }
    assert_eq!(sched.lr(0), 1.9999999999999966e-4);
}

#[test]
fn parity_adamw_steps() {
    let Some(fix) = shared_path("fixtures/schedule_optimizer.npz", "parity_adamw_steps") else { return };
    let opt = AdamW::default();
    let mut params: Vec<Vec<f32>> = (0..3).map(|p| npz(&fix, &format!("adamw_p{p}_init"))).collect();
    let mut states: Vec<AdamWState> = params.iter().map(|p| AdamWState::new(p.len())).collect();
    for step in 0..3 {
        let lr: Vec<f64> = npz(&fix, &format!("adamw_step{step}_lr"));
        for p in 0..3 {
            let grad: Vec<f32> = npz(&fix, &format!("adamw_step{step}_p{p}_grad"));
            opt.step(&mut params[p], &grad, &mut states[p], lr[0], step + 1);
            for (name, ours) in
                [("after", &params[p]), ("exp_avg", &states[p].exp_avg), ("exp_avg_sq", &states[p].exp_avg_sq)]
            {
                let r: Vec<f32> = npz(&fix, &format!("adamw_step{step}_p{p}_{name}"));
                for (a, b) in ours.iter().zip(&r) {
                    assert!((a - b).abs() <= 1e-7 + 1e-6 * b.abs(), "step {step} p{p} {name}: {a} vs {b}");
                }
            }
        }
    }
}
