//! Search: recordings by phone (any format), agent, campaign, lead, date
//! range, state and held or not; paged, sorted by any column, every search
//! a URL that can be shared (the query string is the whole search), and
//! the same search as a CSV download walked by cursor, a million rows
//! without holding them.

use std::fmt::Write as _;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::errors::Problem;
use super::exports::{self, audit_download};
use super::form::Form;
use super::html::{self, esc, query, segment};
use super::{Console, Ctx, Role};
use crate::catalog::{Entry, Paging, Search, Selector, Sort, SortKey, StateFilter, stream};
use crate::recording::State;
use crate::recording::phone::normalize;
use crate::serve::body::Body;
use crate::units::{human_bytes, local_time, parse_date, parse_date_end};

/// The query keys a search keeps in its URL.
pub const KEYS: [&str; 12] = [
    "phone",
    "agent",
    "campaign",
    "lead",
    "recording",
    "from",
    "to",
    "state",
    "held",
    "sort",
    "dir",
    "per",
];

const SORTS: [(&str, SortKey); 6] = [
    ("time", SortKey::Time),
    ("host", SortKey::Host),
    ("campaign", SortKey::Campaign),
    ("agent", SortKey::Agent),
    ("size", SortKey::Size),
    ("state", SortKey::State),
];

/// The selectors of a form's phone, agent, campaign, lead, recording and
/// from/to fields (none: none).
pub fn selectors(q: &Form) -> Result<Vec<Selector>, Problem> {
    let mut out = Vec::new();
    for p in q.all("phone") {
        out.push(Selector::Phone(normalize(p).map_err(|e| Problem::bad(&e))?));
    }
    for a in q.all("agent") {
        out.push(Selector::Agent(a.to_string()));
    }
    for c in q.all("campaign") {
        out.push(Selector::Campaign(c.to_string()));
    }
    for l in q.all("lead") {
        out.push(Selector::Lead(l.to_string()));
    }
    for r in q.all("recording") {
        out.push(Selector::Recording(r.to_string()));
    }
    let date = |key: &str, end: bool| -> Result<Option<i64>, Problem> {
        match q.get(key) {
            "" => Ok(None),
            t if end => parse_date_end(t).map(Some).map_err(|e| Problem::bad(&e)),
            t => parse_date(t).map(Some).map_err(|e| Problem::bad(&e)),
        }
    };
    let (from, to) = (date("from", false)?, date("to", true)?);
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(Problem::bad("`from` is not before `to`"));
    }
    if from.is_some() || to.is_some() {
        out.push(Selector::Time { from, to });
    }
    Ok(out)
}

/// The search a query string asks for, and the page it is on.
pub(super) fn search_of(q: &Form) -> Result<(Search, u64, u32), Problem> {
    let state = match q.get("state") {
        "" => None,
        "erasing" => Some(StateFilter::Erasing),
        "erased" => Some(StateFilter::Erased),
        s => Some(StateFilter::State(
            s.parse::<State>().map_err(|e| Problem::bad(&e))?,
        )),
    };
    let held = match q.get("held") {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        other => return Err(Problem::bad(&format!("held `{other}`: use yes or no"))),
    };
    let key = match q.get("sort") {
        "" => SortKey::Time,
        s => SORTS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| Problem::bad(&format!("cannot sort by `{s}`")))?,
    };
    let descending = match q.get("dir") {
        "" | "desc" => true,
        "asc" => false,
        other => return Err(Problem::bad(&format!("dir `{other}`: use asc or desc"))),
    };
    let page: u64 = match q.get("page") {
        "" => 1,
        p => p
            .parse()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or_else(|| Problem::bad("page must be a number from 1"))?,
    };
    let per: u32 = match q.get("per") {
        "" => 50,
        p => p
            .parse()
            .ok()
            .filter(|p| [25, 50, 100, 200].contains(p))
            .ok_or_else(|| Problem::bad("per must be 25, 50, 100 or 200"))?,
    };
    let search = Search {
        selectors: selectors(q)?,
        state,
        held,
        case: None,
        host: None,
        sort: Sort { key, descending },
        paging: Paging::Offset {
            offset: (page - 1) * u64::from(per),
            limit: per,
        },
    };
    Ok((search, page, per))
}

/// The query string of this search with `changes` made.
fn link(q: &Form, changes: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, &str)> = KEYS
        .iter()
        .map(|k| {
            let v = changes
                .iter()
                .find(|(c, _)| c == k)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| q.get(k));
            (*k, v)
        })
        .chain(changes.iter().filter(|(c, _)| *c == "page").copied())
        .collect();
    query(pairs)
}

/// A recording's page.
pub fn href(e: &Entry) -> String {
    format!("/console/recordings/{}/{}", segment(&e.host), e.id)
}

fn form_html(q: &Form) -> String {
    let mut states: Vec<(&str, &str)> = vec![("", "any")];
    states.extend(State::ALL.iter().map(|s| (s.as_str(), s.as_str())));
    states.extend([("erasing", "being erased"), ("erased", "erased")]);
    format!(
        "<form method=\"get\" action=\"/console/search\" class=\"search\" role=\"search\">\
         <div class=\"grid\">{}{}{}{}{}{}{}{}</div>\
         <input type=\"hidden\" name=\"sort\" value=\"{}\"><input type=\"hidden\" name=\"dir\" value=\"{}\">\
         <button type=\"submit\">Search</button></form>",
        html::input(
            "phone",
            "Phone (any format)",
            q.get("phone"),
            "inputmode=\"tel\" autocomplete=\"off\""
        ),
        html::input("agent", "Agent", q.get("agent"), ""),
        html::input("campaign", "Campaign", q.get("campaign"), ""),
        html::input("lead", "Lead id", q.get("lead"), ""),
        html::input(
            "from",
            "From (YYYY-MM-DD)",
            q.get("from"),
            "placeholder=\"2026-03-01\""
        ),
        html::input(
            "to",
            "To (YYYY-MM-DD, included)",
            q.get("to"),
            "placeholder=\"2026-03-31\""
        ),
        html::select("state", "State", q.get("state"), &states),
        html::select(
            "held",
            "Legal hold",
            q.get("held"),
            &[("", "any"), ("yes", "held"), ("no", "not held")]
        ),
        esc(q.get("sort")),
        esc(q.get("dir")),
    )
}

/// `GET /console/search`.
pub async fn page(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Listener)?;
    let mut main = String::new();
    let asked = KEYS[..9].iter().any(|k| !q.get(k).is_empty());
    let searched = match search_of(q) {
        Err(p) => {
            main.push_str(&html::notice("error", &esc(&p.message)));
            main.push_str(&form_html(q));
            let body = html::page(Some(&ctx.viewer), "Search recordings", &main);
            return Ok(super::page(StatusCode::BAD_REQUEST, body));
        }
        Ok(s) => s,
    };
    main.push_str(&form_html(q));
    if asked {
        let (search, page_no, per) = searched;
        let found = console.catalog.search(&search).await?;
        let total = found.total.unwrap_or(0);
        let first = (page_no - 1) * u64::from(per);
        let _ = write!(
            main,
            "<p class=\"count\" role=\"status\">{} recording{} found{}.</p>",
            total,
            if total == 1 { "" } else { "s" },
            if total > 0 {
                format!(
                    ", showing {}–{}",
                    first + 1,
                    first + found.entries.len() as u64
                )
            } else {
                String::new()
            },
        );
        main.push_str(&table(q, &found.entries));
        main.push_str(&pager(q, page_no, per, total));
        main.push_str(&downloads(console, ctx, q, total));
    }
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Search recordings", &main),
    ))
}

/// The CSV download (a GET form: the search in hidden fields, and why) and,
/// for the compliance role, the export of the same results.
fn downloads(console: &Console, ctx: &Ctx, q: &Form, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    let fields = html::hidden(KEYS.iter().map(|k| (*k, q.get(k))));
    format!(
        "<section class=\"downloads\" aria-labelledby=\"h-downloads\"><h2 id=\"h-downloads\">Take these results away</h2>\
         <form method=\"get\" action=\"/console/search.csv\" class=\"csv\">{fields}{}\
         <button type=\"submit\">Download all as CSV</button></form>{}</section>",
        exports::reason_input(console, "csv-reason", "downloading this list"),
        exports::start_form(console, ctx, q, total)
    )
}

fn table(q: &Form, entries: &[Entry]) -> String {
    let (sort, dir) = (q.get("sort"), q.get("dir"));
    let head = |key: &str, label: &str| {
        let current = sort == key || (sort.is_empty() && key == "time");
        let next = if current && dir != "asc" {
            "asc"
        } else {
            "desc"
        };
        let aria = match (current, dir) {
            (false, _) => "",
            (true, "asc") => " aria-sort=\"ascending\"",
            (true, _) => " aria-sort=\"descending\"",
        };
        format!(
            "<th scope=\"col\"{aria}><a href=\"/console/search?{}\">{label}</a></th>",
            esc(&link(q, &[("sort", key), ("dir", next)]))
        )
    };
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"results\"><thead><tr>{}<th scope=\"col\">Recording</th>{}{}{}\
         <th scope=\"col\">Phone</th><th scope=\"col\">Lead</th>{}{}<th scope=\"col\">Held by</th></tr></thead><tbody>",
        head("time", "Call time"),
        head("host", "Box"),
        head("campaign", "Campaign"),
        head("agent", "Agent"),
        head("size", "Size"),
        head("state", "State"),
    );
    for e in entries {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&local_time(e.time)),
            esc(&href(e)),
            esc(&e.name),
            esc(&e.host),
            esc(e.campaign.as_deref().unwrap_or("")),
            esc(e.agent.as_deref().unwrap_or("")),
            esc(e.phone.as_deref().unwrap_or("")),
            esc(e.lead_id.as_deref().unwrap_or("")),
            esc(&human_bytes(e.size)),
            esc(e.status()),
            esc(&e.held_by.join(", ")),
        );
    }
    if entries.is_empty() {
        out.push_str("<tr><td colspan=\"10\">No recording matches.</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

fn pager(q: &Form, page_no: u64, per: u32, total: u64) -> String {
    let pages = total.div_ceil(u64::from(per)).max(1);
    let mut out = String::from("<nav class=\"pager\" aria-label=\"Pages\">");
    if page_no > 1 {
        let p = (page_no - 1).to_string();
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"/console/search?{}\">Previous</a>",
            esc(&link(q, &[("page", &p)]))
        );
    }
    let _ = write!(out, "<span>Page {page_no} of {pages}</span>");
    if page_no < pages {
        let p = (page_no + 1).to_string();
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"/console/search?{}\">Next</a>",
            esc(&link(q, &[("page", &p)]))
        );
    }
    out.push_str("</nav>");
    out
}

/// One CSV field: quoted where needed, and never read as a formula by a
/// spreadsheet (a leading `= + - @` gets a `'`).
fn field(text: &str) -> String {
    let text = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One recording as a CSV line.
fn csv_line(e: &Entry) -> String {
    let fields = [
        local_time(e.time),
        e.host.clone(),
        e.id.to_string(),
        e.name.clone(),
        e.campaign.clone().unwrap_or_default(),
        e.agent.clone().unwrap_or_default(),
        e.phone.clone().unwrap_or_default(),
        e.lead_id.clone().unwrap_or_default(),
        e.call_length.map(|l| l.to_string()).unwrap_or_default(),
        e.size.to_string(),
        e.sha256.clone().unwrap_or_default(),
        e.status().to_string(),
        e.held_by.join(" "),
    ];
    let mut line = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// `GET /console/search.csv`: every match, streamed, once the download is
/// in the audit trail with who, from where and why.
pub async fn csv(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Listener)?;
    let (search, _, _) = search_of(q)?;
    let reason = exports::reason_of(console, q, "are downloading this list")?;
    let key = console.jobs.as_ref().map(|j| j.key());
    let subject = format!("search results as CSV: {}", exports::describe(&search, key));
    audit_download(console, ctx, subject, reason).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut rows = stream(console.catalog.clone(), search, 1000);
    tokio::spawn(async move {
        let head = "call_time,host,id,name,campaign,agent,phone,lead_id,call_seconds,size,sha256,state,held_by\r\n";
        if tx.send(Bytes::from_static(head.as_bytes())).await.is_err() {
            return;
        }
        let mut chunk = String::new();
        while let Some(row) = rows.next().await {
            match row {
                Ok(e) => chunk.push_str(&csv_line(&e)),
                Err(e) => {
                    // The download ends short; the operator sees it in the log.
                    tracing::warn!("console CSV cut short: {e}");
                    break;
                }
            }
            if chunk.len() > 64 * 1024
                && tx
                    .send(Bytes::from(std::mem::take(&mut chunk)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let _ = tx.send(Bytes::from(chunk)).await;
    });
    let mut r = Response::new(Body::Chunks(rx));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"recordings.csv\""),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn searches_read_back_from_their_urls() {
        let q = Form::parse("phone=%2B1+(555)+123-4567&sort=size&dir=asc&page=2&per=25").unwrap();
        let (s, page, per) = search_of(&q).unwrap();
        assert_eq!(s.selectors, vec![Selector::Phone("5551234567".into())]);
        assert_eq!((page, per), (2, 25));
        assert_eq!(
            s.sort,
            Sort {
                key: SortKey::Size,
                descending: false
            }
        );
        assert_eq!(
            s.paging,
            Paging::Offset {
                offset: 25,
                limit: 25
            }
        );
        for bad in [
            "phone=abc",
            "sort=name",
            "page=0",
            "per=7",
            "state=nope",
            "from=2026-03-02&to=2026-03-01",
        ] {
            assert!(search_of(&Form::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
