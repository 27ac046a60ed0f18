//! The built-in global encoder on synthetic integrated rooms (repeated textures and furniture):
//! a test image must retrieve a training image of its own room.

use std::io::Write;

use glace_data::SplitKind;
use glace_formats::weights::xfeat_weights;
use glace_nn::global::{colour_layout, place_labels, GlobalInput, VladPca};
use glace_nn::XFeat;
use glace_synth::{build, Kind, SynthConfig};

fn recall_at_1(rooms: usize, train: usize, test: usize, size: (u32, u32)) -> Option<f64> {
    let weights = match xfeat_weights() {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED global recall: XFeat weights unavailable: {e}");
            return None;
        }
    };
    let net =
        XFeat::from_state_dict(&weights, &glace_formats::pt::load_state_dict(&weights, None, "").unwrap()).unwrap();
    let mut c = SynthConfig::new(Kind::Rooms);
    (c.rooms, c.frames, c.test_frames, c.width, c.height) = (rooms, train, test, size.0, size.1);
    c.focal = 525.0 * size.0 as f64 / 640.0;
    c.texture_size = 512;
    let scene = build(&c).unwrap();
    let mut train_desc = Vec::new();
    let mut train_room = Vec::new();
    let mut test_desc = Vec::new();
    let mut test_room = Vec::new();
    let mut train_centres = Vec::new();
    for shot in &scene.shots {
        let img = scene.render(shot).rgb;
        let (feats, _) = net.encode(img.as_raw(), size.1 as usize, size.0 as usize);
        let input = GlobalInput {
            descriptors: feats.data,
            colour: colour_layout(img.as_raw(), size.0 as usize, size.1 as usize),
        };
        if shot.split == SplitKind::Train {
            train_desc.push(input);
            train_room.push(shot.place);
            train_centres.push(shot.view.pose.center().into());
        } else {
            test_desc.push(input);
            test_room.push(shot.place);
        }
    }
    let places = place_labels(&train_centres, 0);
    let enc = VladPca::fit(&train_desc, Some(&places), false, 64, 16, 256, 0);
    let db: Vec<Vec<f32>> = train_desc.iter().map(|d| enc.encode(d)).collect();
    let hits = test_desc
        .iter()
        .zip(&test_room)
        .filter(|(d, room)| {
            let q = enc.encode(d);
            let best = (0..db.len()).max_by(|&a, &b| {
                let sa: f32 = db[a].iter().zip(&q).map(|(x, y)| x * y).sum();
                let sb: f32 = db[b].iter().zip(&q).map(|(x, y)| x * y).sum();
                sa.total_cmp(&sb)
            });
            train_room[best.unwrap()] == **room
        })
        .count();
    Some(hits as f64 / test_desc.len() as f64)
}

/// The target: ≥ 95 % same-room recall@1 on integrated rooms (8 rooms furnished alike,
/// 48 mapping frames per room; measured 97.9 %, 91.7 % without the within-place whitening).
#[test]
fn builtin_global_encoder_same_room_recall() {
    let Some(r) = recall_at_1(8, 48, 6, (320, 240)) else { return };
    let _ = writeln!(std::io::stderr(), "same-room recall@1 on 8 synthetic rooms: {:.1} %", 100.0 * r);
    assert!(r >= 0.95, "recall@1 {:.1} %", 100.0 * r);
}

/// The same with 20 test frames per room (160 queries), too slow for every CI run:
/// `cargo test --release -p glace-nn --test global_recall -- --ignored`.
#[test]
#[ignore]
fn builtin_global_encoder_same_room_recall_160_queries() {
    let Some(r) = recall_at_1(8, 48, 20, (320, 240)) else { return };
    let _ = writeln!(std::io::stderr(), "same-room recall@1, 160 queries: {:.1} %", 100.0 * r);
    assert!(r >= 0.95, "recall@1 {:.1} %", 100.0 * r);
}
