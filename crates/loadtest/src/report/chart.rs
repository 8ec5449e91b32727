//! Line charts as inline SVG: axes with round ticks, one polyline per series, a legend, and
//! vertical markers for faults. No script, no font files: the browser lays the text out.

use std::fmt::Write as _;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 64.0;

/// Colours for series, in order (distinguishable, also in greyscale print).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// `(x, y)`, x ascending.
    pub points: Vec<(f64, f64)>,
    /// A fixed palette slot, so a series keeps its colour across charts (errors by kind);
    /// `None` for its position.
    pub color: Option<usize>,
}

impl Series {
    /// A series coloured by its position.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            color: None,
        }
    }
}

/// A vertical line at `x` with a label (a fault).
#[derive(Debug, Clone)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// What happened.
    pub label: String,
}

/// A chart of series over the run's seconds.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Shown above the plot.
    pub title: String,
    /// The y axis' unit (`req/s`, `ms`).
    pub unit: String,
    /// The x axis ends here (the run's length in seconds).
    pub x_max: f64,
    /// The y axis ends at least here (to share a scale between charts); 0 for automatic.
    pub y_max: f64,
    /// The lines.
    pub series: Vec<Series>,
    /// Fault markers.
    pub markers: Vec<Marker>,
}

/// `text` safe inside SVG text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round step for about `target` intervals over `range`: 1, 2 or 5 times a power of ten.
pub fn nice_step(range: f64, target: f64) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn label(value: f64) -> String {
    if value == 0.0 {
        "0".into()
    } else if value.abs() >= 1000.0 {
        format!("{:.1}k", value / 1000.0).replace(".0k", "k")
    } else if value.abs() >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

impl LineChart {
    /// The highest y of any point.
    pub fn data_y_max(&self) -> f64 {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite())
            .fold(0.0, f64::max)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let x_max = if self.x_max > 0.0 { self.x_max } else { 1.0 };
        let top_data = self.data_y_max().max(self.y_max);
        let y_step = nice_step(if top_data > 0.0 { top_data } else { 1.0 }, 5.0);
        let y_max = ((top_data / y_step).ceil() * y_step).max(y_step);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x / x_max).clamp(0.0, 1.0) * plot_w;
        let py = |y: f64| TOP + plot_h - (y / y_max).clamp(0.0, 1.0) * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}"><title>{title}</title><text x="{LEFT}" y="18" class="chart-title">{title}</text>"#,
            title = escape(&self.title)
        );
        // Horizontal grid and y labels.
        let mut y = 0.0;
        while y <= y_max + y_step / 2.0 {
            let at = py(y);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{at:.1}" x2="{:.1}" y2="{at:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                at + 4.0,
                label(y)
            );
            y += y_step;
        }
        // X ticks, in seconds.
        let x_step = nice_step(x_max, 8.0);
        let mut x = 0.0;
        while x <= x_max + x_step / 100.0 {
            let at = px(x);
            let _ = write!(
                svg,
                r##"<line x1="{at:.1}" y1="{:.1}" x2="{at:.1}" y2="{:.1}" stroke="#999"/><text x="{at:.1}" y="{:.1}" text-anchor="middle" class="tick">{}s</text>"##,
                TOP + plot_h,
                TOP + plot_h + 4.0,
                TOP + plot_h + 16.0,
                label(x)
            );
            x += x_step;
        }
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/><text x="12" y="{:.1}" class="unit" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"##,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.unit)
        );
        for marker in &self.markers {
            let at = px(marker.x);
            let _ = write!(
                svg,
                r##"<g class="fault"><line x1="{at:.1}" y1="{TOP}" x2="{at:.1}" y2="{:.1}" stroke="#b00" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" class="marker">{}</text></g>"##,
                TOP + plot_h,
                at + 3.0,
                TOP + 12.0,
                escape(&marker.label)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[series.color.unwrap_or(i) % PALETTE.len()];
            let points: Vec<String> = series
                .points
                .iter()
                // Points past the end (requests drained after the deadline) are not drawn.
                .filter(|(x, y)| x.is_finite() && y.is_finite() && *x <= x_max)
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if !points.is_empty() {
                let _ = write!(
                    svg,
                    r#"<polyline class="series" data-series="{}" fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
                    escape(&series.name),
                    points.join(" ")
                );
            }
            // Legend entries in rows of four below the axis.
            let (col, row) = ((i % 4) as f64, (i / 4) as f64);
            let lx = LEFT + col * (plot_w / 4.0);
            let ly = HEIGHT - BOTTOM + 36.0 + row * 16.0;
            let _ = write!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="4" fill="{color}"/><text x="{:.1}" y="{ly:.1}" class="legend">{}</text>"#,
                ly - 5.0,
                lx + 16.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> LineChart {
        LineChart {
            title: "Requests <per> second".into(),
            unit: "req/s".into(),
            x_max: 30.0,
            y_max: 0.0,
            series: vec![
                Series {
                    name: "api".into(),
                    points: vec![(1.0, 10.0), (2.0, 180.0), (3.0, f64::NAN)],
                    color: None,
                },
                Series {
                    name: "empty".into(),
                    points: vec![],
                    color: Some(3),
                },
            ],
            markers: vec![Marker {
                x: 12.0,
                label: "stop backend-api-1".into(),
            }],
        }
    }

    #[test]
    fn round_steps() {
        assert_eq!(nice_step(180.0, 5.0), 50.0);
        assert_eq!(nice_step(30.0, 8.0), 5.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(nice_step(1000.0, 5.0), 200.0);
    }

    #[test]
    fn draws_series_markers_and_escapes_text() {
        let svg = chart().svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Requests &lt;per&gt; second"));
        // One polyline (the empty series draws none), its NaN point dropped.
        assert_eq!(svg.matches("<polyline").count(), 1);
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 2);
        // y from 0 to 200 in steps of 50: 180 is drawn below the top.
        assert!(svg.contains(">200<"), "{svg}");
        assert!(svg.contains("stop backend-api-1"));
        assert!(!svg.contains(r#"data-series="empty""#));
        assert!(svg.contains(">empty<"), "the legend still names it");
        assert!(
            svg.contains(&format!("fill=\"{}\"/><text", PALETTE[3])),
            "its fixed colour"
        );
    }

    #[test]
    fn shared_scale_raises_the_axis() {
        let mut chart = chart();
        chart.y_max = 1000.0;
        assert!(chart.svg().contains(">1k<"));
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(label(0.0), "0");
        assert_eq!(label(2500.0), "2.5k");
        assert_eq!(label(2000.0), "2k");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(1.5), "1.5");
        assert_eq!(label(15.0), "15");
    }
}
