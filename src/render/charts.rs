//! Inline SVG charts of a run's time series, drawn with `plotters`' SVG
//! backend: readable without JavaScript and with no external file.

use crate::series::Row;
use plotters::prelude::*;

/// Width and height of every chart, px.
const SIZE: (u32, u32) = (960, 260);

/// One line of a chart.
pub struct Line {
    /// Legend text.
    pub name: &'static str,
    /// Colour.
    pub color: RGBColor,
    /// Points (t_s, value); a gap in the data is simply missing points.
    pub points: Vec<(f64, f64)>,
}

/// A shaded span of the x axis (a nemesis window or a stage).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Start, s.
    pub from: f64,
    /// End, s.
    pub to: f64,
    /// What it was.
    pub label: String,
    /// True for a nemesis window (red); false for a stage (alternating grey).
    pub nemesis: bool,
}

/// A chart ready to draw, or the reason it cannot be.
pub struct Chart {
    /// Anchor id in the page (`chart-throughput`).
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Y axis description.
    pub y_desc: &'static str,
    /// The lines.
    pub lines: Vec<Line>,
}

/// Events that end a nemesis window (`heal`, `partition stop`, ...).
fn ends_window(event: &str) -> bool {
    let e = event.to_ascii_lowercase();
    ["heal", "stop", "end", "resume", "recover", "restore"]
        .iter()
        .any(|w| e.contains(w))
}

/// Nemesis windows: from an event that is not an ending one until the next
/// ending event (or the end of the series); and one span per stage.
pub fn spans(rows: &[Row]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<(f64, String)> = None;
    let end = rows.last().map_or(0.0, |r| r.t_s);
    for r in rows {
        let start = (r.t_s - 1.0).max(0.0);
        for ev in &r.nemesis {
            if ends_window(ev) {
                if let Some((from, label)) = open.take() {
                    // Both edges at the start of the row the event fell in:
                    // a window healed in the next row lasted about a row,
                    // not two (back-to-back windows stay apart).
                    out.push(Span {
                        from,
                        to: start.max(from),
                        label,
                        nemesis: true,
                    });
                }
            } else if open.is_none() {
                open = Some((start, ev.clone()));
            }
        }
    }
    if let Some((from, label)) = open {
        out.push(Span {
            from,
            to: end,
            label,
            nemesis: true,
        });
    }
    let mut stage: Option<(usize, f64)> = None;
    for r in rows {
        let start = (r.t_s - 1.0).max(0.0);
        if stage.map(|s| s.0) != r.stage {
            if let Some((i, from)) = stage.take() {
                out.push(stage_span(i, from, start));
            }
            stage = r.stage.map(|i| (i, start));
        }
    }
    if let Some((i, from)) = stage {
        out.push(stage_span(i, from, end));
    }
    out
}

fn stage_span(i: usize, from: f64, to: f64) -> Span {
    Span {
        from,
        to,
        label: format!("stage {i}"),
        nemesis: false,
    }
}

/// The four charts of a run: throughput, latency percentiles, errors, RSS.
pub fn run_charts(rows: &[Row]) -> Vec<Chart> {
    let pts = |f: &dyn Fn(&Row) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (r.t_s, v)))
            .collect()
    };
    vec![
        Chart {
            id: "chart-throughput",
            title: "Throughput",
            y_desc: "ops/s",
            lines: vec![Line {
                name: "completed ops/s",
                color: RGBColor(31, 119, 180),
                points: pts(&|r| Some(r.throughput)),
            }],
        },
        Chart {
            id: "chart-latency",
            title: "Latency",
            y_desc: "ms",
            lines: vec![
                Line {
                    name: "p50",
                    color: RGBColor(44, 160, 44),
                    points: pts(&|r| r.latency_ms.map(|l| l.p50)),
                },
                Line {
                    name: "p95",
                    color: RGBColor(255, 127, 14),
                    points: pts(&|r| r.latency_ms.map(|l| l.p95)),
                },
                Line {
                    name: "p99",
                    color: RGBColor(214, 39, 40),
                    points: pts(&|r| r.latency_ms.map(|l| l.p99)),
                },
            ],
        },
        Chart {
            id: "chart-errors",
            title: "Errors",
            y_desc: "ops per interval",
            lines: vec![
                Line {
                    name: "fail",
                    color: RGBColor(214, 39, 40),
                    points: pts(&|r| Some(r.fail as f64)),
                },
                Line {
                    name: "info",
                    color: RGBColor(148, 103, 189),
                    points: pts(&|r| Some(r.info as f64)),
                },
                Line {
                    name: "dropped",
                    color: RGBColor(127, 127, 127),
                    points: pts(&|r| Some(r.dropped as f64)),
                },
            ],
        },
        Chart {
            id: "chart-rss",
            title: "Resident memory",
            y_desc: "MB",
            lines: vec![
                Line {
                    name: "converge",
                    color: RGBColor(31, 119, 180),
                    points: pts(&|r| r.converge.map(|u| u.rss_mb)),
                },
                Line {
                    name: "target",
                    color: RGBColor(255, 127, 14),
                    points: pts(&|r| r.target.map(|u| u.rss_mb)),
                },
            ],
        },
    ]
}

/// Draws a chart as an SVG document string; `None` when none of its lines
/// has a point (the caller says why instead).
pub fn draw(chart: &Chart, spans: &[Span]) -> Option<String> {
    let drawn: Vec<&Line> = chart
        .lines
        .iter()
        .filter(|l| !l.points.is_empty())
        .collect();
    if drawn.is_empty() {
        return None;
    }
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let x_max = drawn
        .iter()
        .flat_map(|l| l.points.iter().map(|p| finite(p.0)))
        .chain(spans.iter().map(|s| finite(s.to)))
        .fold(1.0_f64, f64::max);
    let y_top = drawn
        .iter()
        .flat_map(|l| l.points.iter().map(|p| finite(p.1)))
        .fold(0.0_f64, f64::max);
    // Head room above the highest point keeps the legend off the lines.
    let y_max = if y_top > 0.0 { y_top * 1.3 } else { 1.0 };
    let mut svg = String::new();
    let result = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        c.configure_mesh()
            .x_desc("seconds since writing started")
            .y_desc(chart.y_desc)
            .light_line_style(WHITE)
            .draw()?;
        let mut stage_no = 0;
        for s in spans {
            let color = if s.nemesis {
                RGBColor(214, 39, 40).mix(0.15)
            } else {
                stage_no += 1;
                if stage_no % 2 == 0 {
                    RGBColor(120, 120, 120).mix(0.10)
                } else {
                    RGBColor(120, 120, 120).mix(0.04)
                }
            };
            let y0 = if s.nemesis { 0.0 } else { y_max * 0.97 };
            c.draw_series(std::iter::once(Rectangle::new(
                [(finite(s.from), y0), (finite(s.to), y_max)],
                color.filled(),
            )))?;
            if !s.nemesis {
                c.draw_series(std::iter::once(Rectangle::new(
                    [(finite(s.from), 0.0), (finite(s.to), y_max * 0.97)],
                    color.filled(),
                )))?;
            }
        }
        for l in &drawn {
            let color = l.color;
            c.draw_series(LineSeries::new(
                l.points.iter().map(|&(x, y)| (finite(x), finite(y))),
                color.stroke_width(2),
            ))?
            .label(l.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
        if spans.iter().any(|s| s.nemesis) {
            let red = RGBColor(214, 39, 40).mix(0.3);
            c.draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                red.filled(),
            )))?
            .label("nemesis window")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], red.filled()));
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    match result {
        Ok(()) => Some(svg),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: f64, stage: Option<usize>, nemesis: &[&str]) -> Row {
        Row {
            t_s: t,
            stage,
            nemesis: nemesis.iter().map(|s| s.to_string()).collect(),
            ..Row::default()
        }
    }

    #[test]
    fn a_window_runs_from_its_start_to_the_heal() {
        let rows = [
            row(1.0, None, &[]),
            row(2.0, None, &["partition start"]),
            row(3.0, None, &[]),
            row(4.0, None, &["heal"]),
            row(5.0, None, &["drop"]),
        ];
        let s = spans(&rows);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].from, s[0].to), (1.0, 3.0));
        // A window never healed runs to the end.
        assert_eq!((s[1].from, s[1].to), (4.0, 5.0));
        assert!(s.iter().all(|s| s.nemesis));
        // Partition, heal, partition, heal in four rows: two windows apart.
        let rows = [
            row(1.0, None, &["partition [0]"]),
            row(2.0, None, &["healed"]),
            row(3.0, None, &["partition [1]"]),
            row(4.0, None, &["healed"]),
        ];
        let s = spans(&rows);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].to < s[1].from, "{s:?}");
    }

    #[test]
    fn stages_become_spans() {
        let rows = [
            row(1.0, Some(0), &[]),
            row(2.0, Some(0), &[]),
            row(3.0, Some(1), &[]),
        ];
        let s = spans(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].from, s[0].to, s[0].nemesis), (0.0, 2.0, false));
        assert_eq!((s[1].from, s[1].to), (2.0, 3.0));
    }

    #[test]
    fn an_empty_chart_is_not_drawn_and_a_full_one_is() {
        let charts = run_charts(&[]);
        assert!(charts.iter().all(|c| draw(c, &[]).is_none()));
        let rows = [row(1.0, None, &[]), row(2.0, None, &["partition"])];
        let charts = run_charts(&rows);
        let svg = draw(&charts[0], &spans(&rows)).expect("throughput drawn");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("nemesis window"));
    }
}
