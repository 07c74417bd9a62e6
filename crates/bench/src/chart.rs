//! The comparison as an SVG chart (plotters, SVG backend only): one small
//! bar panel per headline metric, one bar per server.

use std::path::Path;

use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::compare::{Comparison, Row};
use crate::report::{Better, format_num};

/// The metrics drawn, in order, when present.
pub const HEADLINE: [&str; 22] = [
    "connect.rate",
    "connect.latency.p50",
    "connect.latency.p99",
    "connect-paced.latency.p99",
    "hold.server_per_conn",
    "hold.server_rss_held",
    "reject.rate",
    "reject.latency.p99",
    "echo.rate",
    "echo.rtt.p50",
    "echo.rtt.p99",
    "rpc.rate",
    "rpc.rtt.p99",
    "fanout.all.p50",
    "fanout.all.p99",
    "fanout.rate",
    "fanout.remote.p99",
    "refresh.rate",
    "revoke.latency.p99",
    "revoke.remote.p99",
    "reconnect.back_within_5s",
    "reconnect.return.p99",
];

const COLORS: [RGBColor; 4] = [
    RGBColor(150, 150, 150),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (400, 250);
const HEADER: u32 = 70;

/// Draws `cmp` to an SVG file at `path`.
pub fn draw(cmp: &Comparison, path: &Path) -> Result<(), String> {
    let rows: Vec<&Row> = HEADLINE
        .iter()
        .filter_map(|k| cmp.rows.iter().find(|r| r.key == *k))
        .filter(|r| r.values.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return Err("nothing to draw: no headline metric in the comparison".into());
    }
    let grid_rows = rows.len().div_ceil(COLUMNS);
    let size = (
        PANEL.0 * COLUMNS as u32,
        HEADER + PANEL.1 * grid_rows as u32,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (header, body) = root.split_vertically(HEADER);
    let m = &cmp.machine;
    let title = format!(
        "sockgate-bench: {} ({} mode)",
        cmp.servers.join(" vs "),
        cmp.mode
    );
    header
        .draw_text(
            &title,
            &("sans-serif", 22).into_font().color(&BLACK),
            (12, 10),
        )
        .map_err(|e| e.to_string())?;
    let sub = format!(
        "{} · {} cores · {} GiB · Linux {} · {}",
        m.cpu_model, m.cores, m.memory_gib, m.kernel, m.date
    );
    header
        .draw_text(
            &sub,
            &("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
            (12, 40),
        )
        .map_err(|e| e.to_string())?;
    // Legend.
    let mut x = size.0 as i32 - 20;
    for (i, name) in cmp.servers.iter().enumerate().rev() {
        let w = 30 + 8 * name.len() as i32;
        x -= w;
        header
            .draw(&Rectangle::new(
                [(x, 14), (x + 14, 28)],
                COLORS[i % COLORS.len()].filled(),
            ))
            .map_err(|e| e.to_string())?;
        header
            .draw_text(
                name,
                &("sans-serif", 14).into_font().color(&BLACK),
                (x + 18, 14),
            )
            .map_err(|e| e.to_string())?;
    }
    let panels = body.split_evenly((grid_rows, COLUMNS));
    for (panel, row) in panels.iter().zip(rows) {
        draw_panel(panel, row, &cmp.servers).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_panel(
    panel: &Area<'_>,
    row: &Row,
    servers: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let direction = match row.better {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
        Better::Neither => "",
    };
    let unit = if row.unit.is_empty() {
        String::new()
    } else {
        format!(", {}", row.unit)
    };
    let caption = if direction.is_empty() {
        format!("{} {}{unit}", row.scenario, row.label)
    } else {
        format!("{} {}{unit} ({direction})", row.scenario, row.label)
    };
    let top = row
        .values
        .iter()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b))
        .max(f64::MIN_POSITIVE);
    let n = servers.len() as i32;
    let mut chart = ChartBuilder::on(panel)
        .caption(&caption, ("sans-serif", 14))
        .margin(12)
        .x_label_area_size(22)
        .y_label_area_size(55)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top * 1.25)?;
    let names = servers.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .x_label_formatter(&move |v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i as usize).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .y_label_formatter(&|v| {
            if *v == 0.0 {
                "0".into()
            } else {
                format_num(*v, "x")
            }
        })
        .label_style(("sans-serif", 12))
        .draw()?;
    for (i, value) in row.values.iter().enumerate() {
        let i = i as i32;
        let color = COLORS[i as usize % COLORS.len()];
        let label_style = TextStyle::from(("sans-serif", 13).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom))
            .color(&BLACK);
        match value {
            Some(v) => {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    color.filled(),
                );
                bar.set_margin(0, 0, 18, 18);
                chart.draw_series(std::iter::once(bar))?;
                chart.draw_series(std::iter::once(Text::new(
                    format_num(*v, &row.unit),
                    (SegmentValue::CenterOf(i), *v),
                    label_style,
                )))?;
            }
            None => {
                chart.draw_series(std::iter::once(Text::new(
                    "n/a".to_owned(),
                    (SegmentValue::CenterOf(i), top * 0.1),
                    label_style,
                )))?;
            }
        }
    }
    Ok(())
}
