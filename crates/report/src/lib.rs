//! Reports: PNG plots drawn with plotters and a font compiled into the binary (DejaVu Sans,
//! licence in `assets/`), since a fresh machine has no system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Errors while drawing or writing a plot.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write plot: {message}", path.display())]
pub struct PlotError {
    /// Output file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded font is known-good; failure here would be a build defect.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the embedded font does not parse: the build is broken");
        }
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError { path: path.to_path_buf(), message: e.to_string() }
}

/// Empirical CDF points (x sorted, y in %) of finite values, over `total` frames.
fn cdf(values: &[f64], total: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let mut pts = vec![(0.0, 0.0)];
    for (i, x) in v.iter().enumerate() {
        pts.push((*x, 100.0 * (i + 1) as f64 / total.max(1) as f64));
    }
    pts
}

/// One named series of errors for the CDF plot.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Rotation errors in degrees (infinite for failures).
    pub rot_deg: &'a [f64],
    /// Translation errors in centimetres (infinite for failures).
    pub trans_cm: &'a [f64],
}

/// Writes a PNG with the cumulative distributions of rotation and translation errors, side by
/// side, x axes up to `max_deg` and `max_cm`. The file is written under a temporary name first.
pub fn error_cdf_png(path: &Path, title: &str, series: &[Series], max_deg: f64, max_cm: f64) -> Result<(), PlotError> {
    register_font();
    let (w, h) = (1200u32, 520u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(path, e))?;
        let root = root.titled(title, ("sans-serif", 24)).map_err(|e| err(path, e))?;
        let (left, right) = root.split_horizontally(600);
        let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (area, what, max) in [(&left, "rotation error (°)", max_deg), (&right, "translation error (cm)", max_cm)] {
            let mut chart = ChartBuilder::on(area)
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..max, 0.0..100.0)
                .map_err(|e| err(path, e))?;
            chart
                .configure_mesh()
                .x_desc(what)
                .y_desc("frames (%)")
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| err(path, e))?;
            for (k, s) in series.iter().enumerate() {
                let values = if what.starts_with("rotation") { s.rot_deg } else { s.trans_cm };
                let mut pts = cdf(values, values.len());
                let last = pts.last().map(|p| p.1).unwrap_or(0.0);
                pts.push((max, last));
                let colour = colours[k % colours.len()];
                chart
                    .draw_series(LineSeries::new(pts.into_iter().map(|(x, y)| (x.min(max), y)), colour.stroke_width(2)))
                    .map_err(|e| err(path, e))?
                    .label(s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
            }
            legend(&mut chart, SeriesLabelPosition::LowerRight, path)?;
        }
        root.present().map_err(|e| err(path, e))?;
    }
    write_png(path, w, h, buf)
}

/// Writes a top-down trajectory plot (x, y of camera centres): ground truth as a line, estimates
/// as dots joined to their ground truth by a thin error segment (failures are left out).
pub fn trajectory_png(
    path: &Path,
    title: &str,
    ground_truth: &[[f64; 2]],
    estimates: &[Option<[f64; 2]>],
) -> Result<(), PlotError> {
    register_font();
    let (w, h) = (900u32, 900u32);
    let pts = ground_truth.iter().chain(estimates.iter().flatten());
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in pts.filter(|p| p[0].is_finite() && p[1].is_finite()) {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    if !lo[0].is_finite() {
        return Err(err(path, "no finite camera positions to plot"));
    }
    // Same scale on both axes, with a margin.
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-3) * 1.1;
    let mid = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let (xr, yr) = (mid[0] - span / 2.0..mid[0] + span / 2.0, mid[1] - span / 2.0..mid[1] + span / 2.0);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(path, e))?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xr, yr)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("x (m)")
            .y_desc("y (m)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(path, e))?;
        let gt: Vec<(f64, f64)> = ground_truth.iter().map(|p| (p[0], p[1])).collect();
        chart
            .draw_series(LineSeries::new(gt.iter().copied(), BLUE.stroke_width(2)))
            .map_err(|e| err(path, e))?
            .label("ground truth")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        let pairs: Vec<((f64, f64), (f64, f64))> =
            gt.iter().zip(estimates).filter_map(|(g, e)| e.map(|e| (*g, (e[0], e[1])))).collect();
        chart
            .draw_series(pairs.iter().map(|(g, e)| PathElement::new(vec![*g, *e], RED.mix(0.5).stroke_width(1))))
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(pairs.iter().map(|(_, e)| Circle::new(*e, 3, RED.filled())))
            .map_err(|e| err(path, e))?
            .label("estimate")
            .legend(|(x, y)| Circle::new((x + 9, y), 3, RED.filled()));
        legend(&mut chart, SeriesLabelPosition::UpperRight, path)?;
        root.present().map_err(|e| err(path, e))?;
    }
    write_png(path, w, h, buf)
}

/// Draws the series labels of a chart in the plots' common style.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<(), PlotError>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(path, e))
}

/// Encodes an RGB buffer as PNG under a temporary name, then swaps it into place.
fn write_png(path: &Path, w: u32, h: u32, rgb: Vec<u8>) -> Result<(), PlotError> {
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| err(path, "buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| err(path, e))?;
    glace_outputs::write_file(path, &png).map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_plot_is_written_with_text() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("cdf.png");
        let rot = [0.1, 0.5, 1.0, f64::INFINITY];
        let trans = [0.5, 2.0, 4.0, f64::INFINITY];
        error_cdf_png(&p, "test plot", &[Series { label: "glace", rot_deg: &rot, trans_cm: &trans }], 5.0, 10.0)
            .unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1200, 520));
        // Text and curves leave many dark pixels; a blank canvas would have none.
        let dark = img.pixels().filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100).count();
        assert!(dark > 2000, "{dark} dark pixels");
        assert!(img.pixels().any(|p| p[2] > 200 && p[0] < 60), "no blue curve");
        assert_eq!(cdf(&rot, 4).last().unwrap().1, 75.0);
    }

    #[test]
    fn trajectory_plot_shows_both_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("traj.png");
        let gt: Vec<[f64; 2]> = (0..40).map(|i| [(i as f64 * 0.16).cos(), (i as f64 * 0.16).sin()]).collect();
        let est: Vec<Option<[f64; 2]>> =
            gt.iter().enumerate().map(|(i, g)| (i % 7 != 0).then_some([g[0] + 0.03, g[1] - 0.02])).collect();
        trajectory_png(&p, "trajectory", &gt, &est).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert!(img.pixels().any(|p| p[2] > 200 && p[0] < 60), "no blue path");
        assert!(img.pixels().filter(|p| p[0] > 200 && p[1] < 60).count() > 100, "no red estimates");
        assert!(trajectory_png(&p, "empty", &[], &[]).is_err());
    }
}
