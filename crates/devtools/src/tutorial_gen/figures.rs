//! The figures of docs/figures/.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tokenloom::positions::{QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions};
use tokenloom::tensor::TensorView;

use super::training::{Corpus, DEMO_STEPS, Run, cosine};

/// A figure: its file name under docs/figures/ and its SVG text.
pub type Figure = (&'static str, String);

fn svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(
        DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error + '_>>,
) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        draw(root).unwrap();
    }
    buf
}

/// The Okabe–Ito colour-blind-safe palette (without its yellow, too pale on white).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 0, 0),       // black
];

/// Integer tick labels ("20", not "20.0").
fn integer_label(x: &f64) -> String {
    format!("{x:.0}")
}

/// A legend in its own area (right of a chart), so it never covers a curve.
fn side_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, RGBColor)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = 50 + 22 * i32::try_from(i).unwrap_or(0);
        area.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(3),
        ))?;
        area.draw(&Text::new(label.clone(), (38, y - 7), ("sans-serif", 13)))?;
    }
    Ok(())
}

/// RoPE: the angle of a few pairs (mod 2π) over positions, fast to slow.
fn rope_angles() -> Figure {
    let config = RopeConfig::new(64, 10000.0, RopeLayout::HalfSplit);
    let inv_freq = config.inv_freq(128).unwrap();
    let pairs = [0usize, 4, 8, 12, 16, 31];
    let text = svg(760, 400, |root| {
        let (plot, legend) = root.split_horizontally(650);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "RoPE: rotation angle of pair i (mod 2π), head_dim 64, theta 10000",
                ("sans-serif", 15),
            )
            .margin(10)
            .margin_right(20)
            .x_label_area_size(40)
            .y_label_area_size(50)
            // Slightly below 0, so the slowest pair (angle ≈ 0) is not hidden by the axis.
            .build_cartesian_2d(0f64..128f64, -0.3f64..std::f64::consts::TAU + 0.2)?;
        chart
            .configure_mesh()
            .x_desc("position")
            .y_desc("angle (rad)")
            .x_label_formatter(&integer_label)
            .draw()?;
        for (n, &i) in pairs.iter().enumerate() {
            let color = PALETTE[n % PALETTE.len()];
            chart.draw_series(LineSeries::new(
                (0..128).map(|p| {
                    (
                        p as f64,
                        (p as f64 * inv_freq[i]).rem_euclid(std::f64::consts::TAU),
                    )
                }),
                color.stroke_width(2),
            ))?;
        }
        let entries: Vec<(String, RGBColor)> = pairs
            .iter()
            .enumerate()
            .map(|(n, i)| (format!("pair {i}"), PALETTE[n % PALETTE.len()]))
            .collect();
        side_legend(&legend, &entries)?;
        Ok(())
    });
    ("rope_angles.svg", text)
}

/// RoPE: q_m · k_n against m − n for q = k = ones (the long-range decay).
fn rope_relative() -> Figure {
    let config = RopeConfig::new(128, 10000.0, RopeLayout::HalfSplit);
    let cache = RopeCache::<f64>::new(&config, 512).unwrap();
    let ones = vec![1.0; 128];
    let at = |p: usize| {
        cache
            .apply(
                TensorView::new(&ones, &[1, 1, 1, 128]).unwrap(),
                QkLayout::BatchSeqHeads,
                TokenPositions::Offset(p),
            )
            .unwrap()
    };
    let k0 = at(0);
    let points: Vec<(f64, f64)> = (0..512)
        .map(|m| {
            (
                m as f64,
                at(m)
                    .as_slice()
                    .iter()
                    .zip(k0.as_slice())
                    .map(|(a, b)| a * b)
                    .sum(),
            )
        })
        .collect();
    let text = svg(720, 400, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "RoPE: q_m · k_n depends on m − n only (q = k = ones, head_dim 128)",
                ("sans-serif", 15),
            )
            .margin(10)
            .margin_right(25)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..512f64, -20f64..130f64)?;
        chart
            .configure_mesh()
            .x_desc("m − n")
            .y_desc("q_m · k_n")
            .x_label_formatter(&integer_label)
            .y_label_formatter(&integer_label)
            .draw()?;
        chart.draw_series(LineSeries::new(points, PALETTE[0].stroke_width(2)))?;
        Ok(())
    });
    ("rope_relative.svg", text)
}

/// A diverging, colour-blind-safe map of a cosine in [−1, 1]: blue (−1), white (0),
/// vermillion (+1).
fn cosine_color(c: f64) -> RGBColor {
    let t = c.clamp(-1.0, 1.0);
    let (end, w) = if t < 0.0 {
        (PALETTE[0], -t)
    } else {
        (PALETTE[1], t)
    };
    let mix = |a: u8| (255.0 + (f64::from(a) - 255.0) * w).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// Cosine similarity of the class words' rows, before and after training (untied run),
/// with a colour bar.
fn similarity_heatmap(corpus: &Corpus, run: &Run) -> Figure {
    let words: Vec<usize> = (0..corpus.vocab.len())
        .filter(|&i| corpus.class_of[i].is_some())
        .collect();
    let n = words.len();
    let text =
        svg(1000, 540, |root| {
            let (maps, bar) = root.split_horizontally(900);
            let panels = maps.split_evenly((1, 2));
            let word = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => words
                    .get(*i)
                    .map_or(String::new(), |&w| corpus.vocab[w].to_owned()),
                _ => String::new(),
            };
            for (panel, (title, table)) in panels.iter().zip([
                ("before training", &run.before),
                ("after training", &run.after),
            ]) {
                let mut chart = ChartBuilder::on(panel)
                    .caption(format!("cosine similarity, {title}"), ("sans-serif", 15))
                    .margin(8)
                    .x_label_area_size(80)
                    .y_label_area_size(70)
                    .build_cartesian_2d((0..n).into_segmented(), (0..n).into_segmented())?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_labels(n)
                    .y_labels(n)
                    // The word labels under the x axis are drawn below (plotters centres rotated
                    // mesh labels on the axis line).
                    .x_label_formatter(&|_| String::new())
                    .y_label_formatter(&word)
                    .y_label_style(("sans-serif", 11))
                    .x_desc("word")
                    .y_desc("word")
                    .axis_desc_style(("sans-serif", 13))
                    .draw()?;
                let label_style = ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90)
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                for i in 0..n {
                    let (x, y) =
                        chart.backend_coord(&(SegmentValue::CenterOf(i), SegmentValue::Exact(0)));
                    root.draw(&Text::new(
                        word(&SegmentValue::CenterOf(i)),
                        (x, y + 8),
                        &label_style,
                    ))?;
                }
                chart.draw_series((0..n).flat_map(|a| (0..n).map(move |b| (a, b))).map(
                    |(a, b)| {
                        let c = cosine(table.row(words[a]).unwrap(), table.row(words[b]).unwrap());
                        Rectangle::new(
                            [
                                (SegmentValue::Exact(a), SegmentValue::Exact(b)),
                                (SegmentValue::Exact(a + 1), SegmentValue::Exact(b + 1)),
                            ],
                            cosine_color(c).filled(),
                        )
                    },
                ))?;
            }
            // The colour bar.
            let mut scale = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(88)
                .margin_right(10)
                .y_label_area_size(45)
                .caption("cosine", ("sans-serif", 13))
                .build_cartesian_2d(0f64..1f64, -1f64..1f64)?;
            scale
                .configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(5)
                .y_label_style(("sans-serif", 12))
                .y_label_formatter(&|y| format!("{y:+.1}"))
                .draw()?;
            let steps = 100;
            scale.draw_series((0..steps).map(|k| {
                let lo = -1.0 + 2.0 * k as f64 / steps as f64;
                let hi = lo + 2.0 / steps as f64;
                Rectangle::new(
                    [(0.0, lo), (1.0, hi)],
                    cosine_color((lo + hi) / 2.0).filled(),
                )
            }))?;
            Ok(())
        });
    ("embedding_similarity.svg", text)
}

/// Loss curves of the three arrangements.
fn loss_curves(runs: &[Run]) -> Figure {
    let max = runs
        .iter()
        .flat_map(|r| r.losses.iter().copied())
        .fold(0.0f64, f64::max)
        .min(20.0);
    let text = svg(760, 400, |root| {
        let (plot, legend) = root.split_horizontally(560);
        let mut chart = ChartBuilder::on(&plot)
            .caption("training loss: untied vs tied heads", ("sans-serif", 15))
            .margin(10)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..DEMO_STEPS as f64, 0f64..max * 1.05)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("cross-entropy")
            .x_label_formatter(&integer_label)
            .draw()?;
        for (n, run) in runs.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                run.losses
                    .iter()
                    .enumerate()
                    .map(|(s, &l)| (s as f64, l.min(max))),
                PALETTE[n % PALETTE.len()].stroke_width(2),
            ))?;
        }
        let entries: Vec<(String, RGBColor)> = runs
            .iter()
            .enumerate()
            .map(|(n, run)| (run.mode.label().to_owned(), PALETTE[n % PALETTE.len()]))
            .collect();
        side_legend(&legend, &entries)?;
        Ok(())
    });
    ("loss_curves.svg", text)
}

/// Every figure, by file name under docs/figures/.
pub fn figures(corpus: &Corpus, runs: &[Run]) -> Vec<Figure> {
    vec![
        rope_angles(),
        rope_relative(),
        similarity_heatmap(corpus, &runs[0]),
        loss_curves(runs),
    ]
}
