//! goose's own HTML reports, made to read offline. goose draws its charts
//! with ECharts loaded from a CDN, so a report opened without a network — a
//! CI artifact, a mail attachment — shows its tables but blank charts. Where
//! Grace writes one to a file, the CDN script is replaced by the same ECharts
//! release inlined (vendored in `assets/`, Apache-2.0, its licence beside it).
//! The database keeps goose's page as goose wrote it: a megabyte per worker
//! per run is not worth storing.

/// The script tag goose 0.19's report loads ECharts with.
const CDN_SCRIPT: &str = r#"<script src="https://cdn.jsdelivr.net/npm/echarts@5.2.2/dist/echarts.min.js"></script>"#;
/// That release of ECharts.
const ECHARTS: &str = include_str!("../../assets/echarts-5.2.2.min.js");

/// The file a worker's goose report of a load run is written to, the same
/// wherever it is written (`grace scenario --out`, `grace load --out`,
/// `grace worker --out`), beside the page of the merged run that links it.
pub fn file_name(run: uuid::Uuid, worker: uuid::Uuid) -> String {
    format!("goose-report-{run}-{worker}.html")
}

/// `html` with ECharts inlined instead of fetched. A page that does not load
/// it the way goose 0.19 does is returned unchanged.
pub fn offline(html: &str) -> String {
    html.replacen(CDN_SCRIPT, &format!("<script>{ECHARTS}</script>"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cdn_script_is_replaced_by_the_inlined_release() {
        let page = format!("<html><head>{CDN_SCRIPT}</head><body>chart</body></html>");
        let offline = offline(&page);
        assert!(!offline.contains("cdn.jsdelivr.net"), "nothing fetched");
        assert!(offline.contains("<script>\n/*\n* Licensed to the Apache Software Foundation"), "{}", &offline[..120]);
        assert!(offline.len() > 1_000_000 && offline.ends_with("<body>chart</body></html>"));
        assert_eq!(super::offline("<html>no charts</html>"), "<html>no charts</html>");
    }
}
