//! Charts for people, drawn with plotters: SVG for the replay report, PNG
//! for attaching to work orders. Text uses an embedded Latin subset of
//! DejaVu Sans (`assets/fonts`), so a gateway without fonts draws the same.

use crate::common::types::{to_datetime, Millis};
use crate::pipeline::detect::trend::Prediction;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

pub const LABEL: RGBColor = RGBColor(255, 200, 120);
pub const ALARM: RGBColor = RGBColor(235, 90, 80);
pub const LEARN: RGBColor = RGBColor(205, 205, 205);
pub const LINE: RGBColor = RGBColor(40, 90, 160);
pub const LIMIT: RGBColor = RGBColor(200, 40, 40);
pub const ORDER: RGBColor = RGBColor(120, 40, 160);
const FIT: RGBColor = RGBColor(20, 140, 90);

/// Why a chart could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("chart {0:?} could not be drawn: {1}")]
    Draw(String, String),
    #[error("chart {0:?} could not be encoded as PNG: {1}")]
    Png(String, String),
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Something that draws itself on any plotters backend.
pub trait Chart {
    fn title(&self) -> &str;
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Registers the embedded font as "sans-serif", once.
fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::warn!("the embedded chart font could not be read; charts will have no text");
        }
    });
}

/// The chart as an SVG document.
pub fn svg(chart: &impl Chart, size: (u32, u32)) -> Result<String, ChartError> {
    fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|_| {
            chart.draw(&root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())
        });
        drawn.map_err(|e| ChartError::Draw(chart.title().into(), e))?;
    }
    Ok(out)
}

/// The chart as a PNG image.
pub fn png(chart: &impl Chart, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    fonts();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|_| {
            chart.draw(&root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())
        });
        drawn.map_err(|e| ChartError::Draw(chart.title().into(), e))?;
    }
    let mut out = Vec::new();
    let encoded = (|| -> Result<(), png::EncodingError> {
        let mut enc = png::Encoder::new(&mut out, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        let mut w = enc.write_header()?;
        w.write_image_data(&rgb)?;
        w.finish()
    })();
    encoded.map_err(|e| ChartError::Png(chart.title().into(), e.to_string()))?;
    Ok(out)
}

/// A rendered PNG, cheap to clone; its Debug shows the size, not the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Png(pub std::sync::Arc<Vec<u8>>);

impl std::fmt::Debug for Png {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Png({} bytes)", self.0.len())
    }
}

/// One panel of an evidence chart: a series and the limit it crossed.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub points: Vec<(Millis, f64)>,
    pub limit: Option<f64>,
}

/// What a technician needs to see of a trip: the involved channels and the
/// anomaly score over the hours before it, each with its limit, the trip marked.
#[derive(Debug, Clone)]
pub struct EvidenceChart {
    pub title: String,
    pub panels: Vec<Panel>,
    pub trip: Millis,
}

impl EvidenceChart {
    /// Its size in pixels: one band per panel.
    pub fn size(&self) -> (u32, u32) {
        (1000, 60 + 190 * self.panels.len().max(1) as u32)
    }
}

impl Chart for EvidenceChart {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let body = root.titled(&self.title, ("sans-serif", 17))?;
        let start = self
            .panels
            .iter()
            .filter_map(|p| p.points.first())
            .map(|p| p.0)
            .min()
            .unwrap_or(self.trip);
        let end = self.trip.max(
            self.panels.iter().filter_map(|p| p.points.last()).map(|p| p.0).max().unwrap_or(0),
        );
        let pad = ((end - start) / 25).max(60_000);
        let x = ((start - pad) as f64, (end + pad) as f64);
        let hours = (end - start) as f64 / 3_600_000.0;
        let fmt = if hours > 36.0 { "%m-%d %H:%M" } else { "%H:%M" };
        for (panel, area) in
            self.panels.iter().zip(body.split_evenly((self.panels.len().max(1), 1)))
        {
            let vals =
                panel.points.iter().map(|p| p.1).chain(panel.limit).filter(|v| v.is_finite());
            let (lo, hi) =
                vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let y = if lo.is_finite() {
                let pad = ((hi - lo) * 0.12).max(hi.abs().max(1e-9) * 1e-3);
                (lo - pad, hi + pad)
            } else {
                (0.0, 1.0)
            };
            let mut c = time_axes(&area, &panel.title, 14, x, y, &panel.unit, fmt, 4)?;
            if let Some(l) = panel.limit {
                c.draw_series(DashedLineSeries::new(
                    [(x.0, l), (x.1, l)],
                    8,
                    4,
                    LIMIT.stroke_width(2),
                ))?;
                let above = ("sans-serif", 12)
                    .into_font()
                    .color(&LIMIT)
                    .pos(Pos::new(HPos::Left, VPos::Bottom));
                c.draw_series([Text::new(
                    format!("limit {l} {}", panel.unit),
                    (x.0 + (x.1 - x.0) * 0.02, l),
                    above,
                )])?;
            }
            c.draw_series(LineSeries::new(
                panel.points.iter().map(|p| (p.0 as f64, p.1)),
                LINE.stroke_width(2),
            ))?;
            let t = self.trip as f64;
            c.draw_series(LineSeries::new([(t, y.0), (t, y.1)], ORDER.stroke_width(2)))?;
            let when = to_datetime(self.trip).format("%H:%M");
            let label =
                ("sans-serif", 12).into_font().color(&ORDER).pos(Pos::new(HPos::Right, VPos::Top));
            c.draw_series([Text::new(format!("trip {when} "), (t, y.1), label)])?;
        }
        Ok(())
    }
}

/// A captioned chart on `area` with event time (ms) across, formatted with
/// `fmt`, and `unit` up: the one axis style of every chart here.
#[allow(clippy::too_many_arguments)]
fn time_axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    caption: u32,
    x: (f64, f64),
    y: (f64, f64),
    unit: &str,
    fmt: &str,
    y_labels: usize,
) -> Result<
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    Box<dyn std::error::Error>,
>
where
    DB::ErrorType: 'static,
{
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", caption))
        .margin(6)
        .x_label_area_size(24)
        .y_label_area_size(64)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    c.configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_labels(8)
        .y_labels(y_labels)
        .x_label_formatter(&|v| to_datetime(*v as Millis).format(fmt).to_string())
        .y_desc(unit)
        .draw()?;
    Ok(c)
}

/// Everything drawn besides a series, on one time axis.
#[derive(Debug, Clone, Default)]
pub struct Marks<'a> {
    pub span: (Millis, Millis),
    /// Shaded spans: ground-truth labels, alarms, the learning period.
    pub labels: &'a [(Millis, Millis)],
    pub alarms: &'a [(Millis, Millis)],
    pub learning: Option<(Millis, Millis)>,
    /// Horizontal lines: value and caption.
    pub levels: Vec<(f64, String)>,
    /// Vertical lines (work orders): time and caption.
    pub orders: &'a [(Millis, String)],
}

/// One time series with its marks.
pub struct SeriesChart<'a> {
    pub title: String,
    pub unit: String,
    pub points: &'a [(f64, f64)],
    pub y: (f64, f64),
    pub marks: Marks<'a>,
}

impl Chart for SeriesChart<'_> {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (m, y) = (&self.marks, self.y);
        let x = (m.span.0 as f64, (m.span.1.max(m.span.0 + 1)) as f64);
        let mut c = time_axes(root, &self.title, 15, x, y, &self.unit, "%m-%d %H:%M", 5)?;
        let shade = |spans: &[(Millis, Millis)], color: RGBColor, alpha: f64| {
            spans
                .iter()
                .map(|&(a, b)| {
                    Rectangle::new(
                        [(a as f64, y.0), ((b as f64).max(a as f64 + 1.0), y.1)],
                        color.mix(alpha).filled(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if let Some(l) = m.learning {
            c.draw_series(shade(&[l], LEARN, 0.35))?;
        }
        c.draw_series(shade(m.labels, LABEL, 0.45))?;
        c.draw_series(shade(m.alarms, ALARM, 0.18))?;
        c.draw_series(LineSeries::new(self.points.iter().copied(), LINE.stroke_width(1)))?;
        // Captions are staggered so close neighbours stay readable.
        for (k, (v, caption)) in m.levels.iter().enumerate() {
            if *v < y.0 || *v > y.1 {
                continue;
            }
            c.draw_series(DashedLineSeries::new(
                [(x.0, *v), (x.1, *v)],
                6,
                4,
                LIMIT.stroke_width(1),
            ))?;
            let at = x.0 + (x.1 - x.0) * 0.22 * (k % 4) as f64;
            c.draw_series([Text::new(
                caption.clone(),
                (at, *v),
                ("sans-serif", 11).into_font().color(&LIMIT),
            )])?;
        }
        for (k, (t, caption)) in m.orders.iter().enumerate() {
            let t = *t as f64;
            c.draw_series(LineSeries::new([(t, y.0), (t, y.1)], ORDER.stroke_width(2)))?;
            let at = y.1 - (y.1 - y.0) * 0.1 * (k % 4) as f64;
            c.draw_series([Text::new(
                caption.clone(),
                (t, at),
                ("sans-serif", 11).into_font().color(&ORDER),
            )])?;
        }
        Ok(())
    }
}

/// A degradation trend as a planner needs to see it: the indicator's
/// history, the fitted trend carried on to where it crosses the failure
/// level, the crossing's interval, now, and the due date.
pub struct TrendChart<'a> {
    pub title: String,
    pub unit: String,
    /// The history up to `now`.
    pub points: &'a [(Millis, f64)],
    pub limit: f64,
    pub prediction: Option<&'a Prediction>,
    pub now: Millis,
    pub due: Option<Millis>,
}

impl TrendChart<'_> {
    /// The first point's time (now without history).
    fn start(&self) -> Millis {
        self.points.first().map_or(self.now, |p| p.0)
    }

    /// The time range (from the first point to past the crossing and the due date) and the
    /// value range (the history and the failure level, padded).
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let start = self.start();
        let p = self.prediction;
        // Far enough to show the crossing and the due date; the interval's
        // late end only if it is not much further out.
        let mut end =
            self.now.max(p.map_or(self.now, |p| p.crossing)).max(self.due.unwrap_or(self.now));
        if let Some(late) = p.and_then(|p| p.latest) {
            end = end.max(late.min(end + (end - start) / 3));
        }
        let end = end + (end - start).max(3_600_000) / 20;
        let x = (start as f64, end as f64);
        let vals = self.points.iter().map(|p| p.1).chain([self.limit]).filter(|v| v.is_finite());
        let (lo, hi) =
            vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.1).max(hi.abs().max(1e-9) * 1e-3);
        let y = if lo.is_finite() { (lo - pad, hi + pad) } else { (0.0, 1.0) };
        (x, y)
    }

    /// The prediction, if any: the crossing's interval shaded, the fitted trend carried on to
    /// the crossing (in the legend), and the predicted crossing marked.
    fn draw_prediction<DB: DrawingBackend>(
        &self,
        c: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        x: (f64, f64),
        y: (f64, f64),
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let Some(p) = self.prediction else { return Ok(()) };
        let late = p.latest.map_or(x.1, |l| (l as f64).min(x.1));
        c.draw_series([Rectangle::new(
            [(p.earliest as f64, y.0), (late, y.1)],
            ORDER.mix(0.10).filled(),
        )])?;
        let from = p.from.max(self.start());
        let steps = 120;
        let fit = (0..=steps).map(|i| {
            let t = from + (p.crossing - from) * i / steps;
            (t as f64, p.value_at(t).clamp(y.0, y.1))
        });
        c.draw_series(DashedLineSeries::new(fit, 5, 3, FIT.stroke_width(2)))?
            .label(format!("{} fit (R² {:.2}, {} points)", p.shape, p.r2, p.points))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], FIT.stroke_width(2)));
        let cross = p.crossing as f64;
        c.draw_series(LineSeries::new([(cross, y.0), (cross, y.1)], ORDER.stroke_width(2)))?;
        let when = to_datetime(p.crossing).format("%m-%d %H:%M");
        c.draw_series([beside(x, cross, format!("predicted crossing {when}"), y.1, &ORDER)])?;
        Ok(())
    }
}

/// The trend chart's 12-point text in `color`.
fn font(color: &RGBColor) -> TextStyle<'static> {
    ("sans-serif", 12).into_font().color(color)
}

/// A caption at height `y` by a vertical line at `t`: it reads away from the right edge of
/// the time range `x`.
fn beside(
    x: (f64, f64),
    t: f64,
    text: String,
    y: f64,
    color: &RGBColor,
) -> Text<'static, (f64, f64), String> {
    let right = t > x.0 + (x.1 - x.0) * 0.75;
    let (text, anchor) =
        if right { (format!("{text} "), HPos::Right) } else { (format!(" {text}"), HPos::Left) };
    Text::new(text, (t, y), font(color).pos(Pos::new(anchor, VPos::Top)))
}

impl Chart for TrendChart<'_> {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (x, y) = self.ranges();
        let mut c = time_axes(root, &self.title, 16, x, y, &self.unit, "%m-%d %H:%M", 6)?;
        self.draw_prediction(&mut c, x, y)?;
        c.draw_series(LineSeries::new(
            self.points.iter().map(|p| (p.0 as f64, p.1)),
            LINE.stroke_width(2),
        ))?
        .label("history")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], LINE.stroke_width(2)));
        c.draw_series(
            self.points.iter().map(|p| Circle::new((p.0 as f64, p.1), 2, LINE.filled())),
        )?;
        c.draw_series(DashedLineSeries::new(
            [(x.0, self.limit), (x.1, self.limit)],
            8,
            4,
            LIMIT.stroke_width(2),
        ))?;
        let caption = (x.0 + (x.1 - x.0) * 0.01, self.limit);
        let above = font(&LIMIT).pos(Pos::new(HPos::Left, VPos::Bottom));
        c.draw_series([Text::new(
            format!("failure level {} {}", self.limit, self.unit),
            caption,
            above,
        )])?;
        let now = self.now as f64;
        c.draw_series(DashedLineSeries::new(
            [(now, y.0), (now, y.1)],
            3,
            3,
            BLACK.mix(0.5).stroke_width(1),
        ))?;
        c.draw_series([beside(x, now, "now".into(), y.1 - (y.1 - y.0) * 0.06, &BLACK)])?;
        if let Some(due) = self.due {
            let d = due as f64;
            c.draw_series(LineSeries::new(
                [(d, y.0), (d, y.1)],
                RGBColor(230, 120, 0).stroke_width(2),
            ))?;
            let when = to_datetime(due).format("%m-%d %H:%M");
            c.draw_series([beside(
                x,
                d,
                format!("due {when}"),
                y.1 - (y.1 - y.0) * 0.12,
                &RGBColor(200, 100, 0),
            )])?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::MiddleLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trend_chart_is_a_png_and_an_svg() {
        let h = 3_600_000;
        let points: Vec<(Millis, f64)> =
            (0..48).map(|i| (i * h, 0.05 * (0.03 * i as f64).exp())).collect();
        let p = crate::pipeline::detect::trend::predict(&points, 0.5, 12, 4.0).unwrap();
        let chart = TrendChart {
            title: "bearing1 acceleration.mean".into(),
            unit: "g".into(),
            points: &points,
            limit: 0.5,
            prediction: Some(&p),
            now: 47 * h,
            due: Some(p.earliest - 24 * h),
        };
        let png = png(&chart, (900, 420)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (900, 420));
        let svg = svg(&chart, (900, 420)).unwrap();
        assert!(svg.contains("failure level 0.5 g") && svg.contains("predicted crossing"), "{svg}");
    }
}
