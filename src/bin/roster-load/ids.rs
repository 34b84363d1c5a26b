//! The ids of the users a benchmark drives, read back from the server by a paged list.

use serde_json::Value;

/// Paging deep into a large directory costs more than the benchmark: 50,000 ids spread the
/// requests well enough.
const MOST: usize = 50_000;

/// The ids of the first users `<base>` lists (at most `want`, and at most 50,000), in the
/// server's order.
pub(crate) async fn users(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    want: usize,
) -> anyhow::Result<Vec<String>> {
    let want = want.min(MOST);
    let mut ids = Vec::with_capacity(want);
    let mut start = 1;
    while ids.len() < want {
        let page: Value = http
            .get(format!("{base}?startIndex={start}&count=1000"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let items = page["Resources"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        ids.extend(
            items
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned)),
        );
        start += items.len();
    }
    println!("collected {} ids", ids.len());
    Ok(ids)
}
