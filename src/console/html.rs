//! HTML by hand, escaped: every piece of text that is not a literal of
//! this module's callers passes through [`esc`] (text and attribute values
//! alike), and every URL query through [`query`]. The page frame (head,
//! navigation, skip link) is here; each page writes only its `<main>`.

use std::fmt::Write as _;

use super::sessions::Viewer;

/// `text` safe inside HTML text and double- or single-quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (a file name can hold them) shown, not obeyed.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A URL query (`a=1&b=x%20y`) from pairs, empty values left out.
pub fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// A path segment percent-encoded (a host name in a recording's URL).
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The links of the navigation, with the role each needs.
const NAV: &[(&str, &str, super::Role)] = &[
    ("/console/search", "Search", super::Role::Listener),
    ("/console/holds", "Holds", super::Role::Compliance),
    ("/console/erasure", "Erasure", super::Role::Compliance),
    ("/console/exports", "Exports", super::Role::Compliance),
    ("/console/audit", "Audit", super::Role::Compliance),
    ("/console/overview", "Overview", super::Role::Listener),
];

/// A whole page: `title`, the navigation for `viewer` (none before login),
/// and `main` (already escaped HTML).
pub fn page(viewer: Option<&Viewer>, title: &str, main: &str) -> String {
    framed(viewer, title, main, "")
}

/// [`page`], reloaded by the browser every `seconds` (a job's progress:
/// an HTTP-equiv refresh needs no script, so the CSP stays closed).
pub fn page_refreshing(viewer: Option<&Viewer>, title: &str, main: &str, seconds: u32) -> String {
    framed(
        viewer,
        title,
        main,
        &format!("<meta http-equiv=\"refresh\" content=\"{seconds}\">"),
    )
}

fn framed(viewer: Option<&Viewer>, title: &str, main: &str, head: &str) -> String {
    let mut nav = String::new();
    if let Some(v) = viewer {
        nav.push_str("<header><nav aria-label=\"Console\"><a class=\"brand\" href=\"/console/search\">recvault</a><ul>");
        for (href, label, role) in NAV {
            if v.who.role >= *role {
                let _ = write!(nav, "<li><a href=\"{href}\">{label}</a></li>");
            }
        }
        let _ = write!(
            nav,
            "</ul><span class=\"who\">{} · {}</span>{}</nav></header>",
            esc(&v.who.name),
            v.who.role.as_str(),
            v.post_form("/console/logout", "", "Log out", "link")
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         {head}<title>{} · recvault console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <link rel=\"icon\" href=\"/console/assets/favicon.svg\" type=\"image/svg+xml\"></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>{nav}\
         <main id=\"main\" tabindex=\"-1\"><h1>{}</h1>{main}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// A labelled text input.
pub fn input(name: &str, label: &str, value: &str, extra: &str) -> String {
    input_as(name, name, label, value, extra)
}

/// A labelled text input whose id is not its name (two forms on a page).
pub fn input_as(id: &str, name: &str, label: &str, value: &str, extra: &str) -> String {
    format!(
        "<p class=\"field\"><label for=\"f-{id}\">{label}</label>\
         <input id=\"f-{id}\" name=\"{name}\" value=\"{}\" {extra}></p>",
        esc(value)
    )
}

/// A labelled select; `options` are (value, label).
pub fn select(name: &str, label: &str, value: &str, options: &[(&str, &str)]) -> String {
    let mut out = format!(
        "<p class=\"field\"><label for=\"f-{name}\">{label}</label><select id=\"f-{name}\" name=\"{name}\">"
    );
    for (v, l) in options {
        let selected = if *v == value { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(v),
            esc(l)
        );
    }
    out.push_str("</select></p>");
    out
}

/// Hidden inputs carrying `pairs` (a preview's values into its confirm form).
pub fn hidden<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !v.is_empty() {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            );
        }
    }
    out
}

/// A notice: `kind` is `ok`, `warn` or `error`.
pub fn notice(kind: &str, html: &str) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    format!("<div class=\"notice {kind}\" role=\"{role}\">{html}</div>")
}

/// A definition list of (term, already-escaped value).
pub fn facts(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">");
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    }
    out.push_str("</dl>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(esc("a\u{7}b"), "a\\u{7}b");
        assert_eq!(
            query([("phone", "+1 555"), ("agent", "")]),
            "phone=%2B1+555"
        );
        assert_eq!(segment("a/b c"), "a%2Fb+c");
        let h = hidden([("x", "\"><script>")]);
        assert!(!h.contains("<script>"), "{h}");
    }
}
