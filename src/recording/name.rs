//! Campaign attribution from file names: VICIdial's `campaign_rec_filename`
//! template (`FULLDATE_CUSTPHONE`, `CAMPAIGN_AGENT_FULLDATE_CUSTPHONE`, …)
//! parsed once, matched against each file name, plus an optional campaign
//! per spool directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Datelike, Local, NaiveDateTime, TimeZone};

/// VICIdial's default recording file name template.
pub const DEFAULT_NAME_TEMPLATE: &str = "FULLDATE_CUSTPHONE";

/// A VICIdial file name variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    Campaign,
    InGroup,
    CustPhone,
    /// `YYYYMMDD-HHMMSS`, local time.
    FullDate,
    /// `YYMMDDHHMMSS`, local time.
    TinyDate,
    /// Unix seconds.
    Epoch,
    Agent,
    LeadId,
    VendorLeadCode,
    CallId,
    RecId,
}

impl Variable {
    /// Longest names first, so tokenizing never stops at a shorter prefix.
    const ALL: [(&'static str, Variable); 11] = [
        ("VENDORLEADCODE", Variable::VendorLeadCode),
        ("CUSTPHONE", Variable::CustPhone),
        ("CAMPAIGN", Variable::Campaign),
        ("FULLDATE", Variable::FullDate),
        ("TINYDATE", Variable::TinyDate),
        ("INGROUP", Variable::InGroup),
        ("LEADID", Variable::LeadId),
        ("CALLID", Variable::CallId),
        ("EPOCH", Variable::Epoch),
        ("AGENT", Variable::Agent),
        ("RECID", Variable::RecId),
    ];

    fn known() -> String {
        Variable::ALL.map(|(n, _)| n).join(" ")
    }

    /// Fixed-width variables can sit next to another variable without a separator.
    fn fixed_width(self) -> bool {
        matches!(
            self,
            Variable::FullDate | Variable::TinyDate | Variable::Epoch
        )
    }

    /// Lengths (shortest first) of the prefixes of `s` this variable may take.
    fn candidates(self, s: &[u8]) -> Vec<usize> {
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let word = s
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            .count();
        match self {
            Variable::FullDate => {
                let ok = s.len() >= 15
                    && s[..8].iter().all(u8::is_ascii_digit)
                    && s[8] == b'-'
                    && s[9..15].iter().all(u8::is_ascii_digit);
                if ok { vec![15] } else { vec![] }
            }
            Variable::TinyDate => (digits >= 12).then_some(12).into_iter().collect(),
            Variable::Epoch => (9..=10).filter(|n| *n <= digits).collect(),
            Variable::CustPhone | Variable::LeadId | Variable::RecId => (1..=digits).collect(),
            Variable::VendorLeadCode => (0..=word).collect(),
            Variable::Campaign | Variable::InGroup | Variable::Agent | Variable::CallId => {
                (1..=word).collect()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Var(Variable),
}

/// A parsed `[naming] template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    text: String,
    parts: Vec<Part>,
}

/// What a matching file name says about its call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFields {
    pub campaign: Option<String>,
    pub ingroup: Option<String>,
    pub phone: Option<String>,
    /// Unix seconds, from EPOCH, FULLDATE or TINYDATE (those two in local time).
    pub call_time: Option<i64>,
    pub agent: Option<String>,
    pub lead_id: Option<String>,
    pub vendor_lead_code: Option<String>,
    pub call_id: Option<String>,
    pub rec_id: Option<String>,
}

impl NameTemplate {
    /// Parses a template such as `FULLDATE_CUSTPHONE`. Runs of capital
    /// letters must be known variables; anything else is literal text.
    pub fn parse(text: &str) -> Result<NameTemplate, String> {
        let bytes = text.as_bytes();
        let mut parts: Vec<Part> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_uppercase() {
                let Some((name, var)) = Variable::ALL
                    .iter()
                    .find(|(n, _)| bytes[i..].starts_with(n.as_bytes()))
                else {
                    let run: String = text[i..]
                        .chars()
                        .take_while(char::is_ascii_uppercase)
                        .collect();
                    return Err(format!(
                        "unknown variable `{run}` in `{text}`; known: {}",
                        Variable::known()
                    ));
                };
                if let Some(Part::Var(prev)) = parts.last()
                    && !prev.fixed_width()
                    && !var.fixed_width()
                {
                    return Err(format!(
                        "`{text}`: variables next to each other need a separator unless one is a date"
                    ));
                }
                parts.push(Part::Var(*var));
                i += name.len();
            } else {
                match parts.last_mut() {
                    Some(Part::Text(t)) => t.push(bytes[i]),
                    _ => parts.push(Part::Text(vec![bytes[i]])),
                }
                i += 1;
            }
        }
        if !parts.iter().any(|p| matches!(p, Part::Var(_))) {
            return Err(format!("`{text}` contains no variable"));
        }
        Ok(NameTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Matches a whole file name: the template, then optionally a leg suffix
    /// (`-all`, `-in`, `-out`) and extensions (`.wav`, `.mp3`, `.wav.zst`).
    pub fn matches(&self, name: &[u8]) -> Option<NameFields> {
        let mut search = Search::new(&self.parts, name);
        if !search.from(0, 0) {
            return None;
        }
        let values = search.values;
        let mut fields = NameFields::default();
        let (mut full, mut tiny, mut epoch) = (None, None, None);
        for (var, value) in values {
            let text = String::from_utf8_lossy(value).into_owned();
            match var {
                Variable::Campaign => fields.campaign = Some(text),
                Variable::InGroup => fields.ingroup = Some(text),
                Variable::CustPhone => fields.phone = Some(text),
                Variable::FullDate => full = Some(local_time(&text, "%Y%m%d-%H%M%S")?),
                Variable::TinyDate => tiny = Some(local_time(&text, "%y%m%d%H%M%S")?),
                Variable::Epoch => epoch = Some(text.parse::<i64>().ok()?),
                Variable::Agent => fields.agent = Some(text),
                Variable::LeadId => fields.lead_id = Some(text),
                Variable::VendorLeadCode => fields.vendor_lead_code = Some(text),
                Variable::CallId => fields.call_id = Some(text),
                Variable::RecId => fields.rec_id = Some(text),
            }
        }
        fields.call_time = epoch.or(full).or(tiny);
        Some(fields)
    }
}

/// A backtracking match (shortest variable values first) that remembers
/// where it failed: each (part, offset) is tried at most once, so a
/// template of many variables and separators against an odd file name takes
/// parts × length² steps, not exponential time.
struct Search<'t, 'n> {
    parts: &'t [Part],
    name: &'n [u8],
    /// `failed[part * (name.len() + 1) + at]`: the parts from `part` on
    /// cannot match the name from `at` on.
    failed: Vec<bool>,
    values: Vec<(Variable, &'n [u8])>,
    /// Calls to [`Search::from`], for the test of the bound.
    #[cfg(test)]
    calls: usize,
}

impl<'t, 'n> Search<'t, 'n> {
    fn new(parts: &'t [Part], name: &'n [u8]) -> Self {
        Search {
            parts,
            name,
            failed: vec![false; (parts.len() + 1) * (name.len() + 1)],
            values: Vec::with_capacity(parts.len()),
            #[cfg(test)]
            calls: 0,
        }
    }

    /// Whether the parts from `part` on match the name from `at` on (the
    /// values found pushed onto `values`).
    fn from(&mut self, part: usize, at: usize) -> bool {
        let memo = part * (self.name.len() + 1) + at;
        if self.failed[memo] {
            return false;
        }
        #[cfg(test)]
        {
            self.calls += 1;
        }
        let name = self.name;
        let rest = &name[at..];
        let found = match self.parts.get(part) {
            None => is_tail(rest),
            Some(Part::Text(t)) => rest.starts_with(t) && self.from(part + 1, at + t.len()),
            Some(Part::Var(v)) => {
                let v = *v;
                v.candidates(rest).into_iter().any(|len| {
                    self.values.push((v, &rest[..len]));
                    let found = self.from(part + 1, at + len);
                    if !found {
                        self.values.pop();
                    }
                    found
                })
            }
        };
        self.failed[memo] = !found;
        found
    }
}

/// What may follow the template: `-all`/`-in`/`-out` (or another short leg
/// tag), then any number of `.ext`.
fn is_tail(rest: &[u8]) -> bool {
    let mut rest = rest;
    if let Some(after) = rest.strip_prefix(b"-") {
        let n = after.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        if n == 0 || n > 5 {
            return false;
        }
        rest = &after[n..];
    }
    while let Some(after) = rest.strip_prefix(b".") {
        let n = after
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if n == 0 {
            return false;
        }
        rest = &after[n..];
    }
    rest.is_empty()
}

fn local_time(text: &str, format: &str) -> Option<i64> {
    let naive = NaiveDateTime::parse_from_str(text, format).ok()?;
    // Calls before VICIdial existed or far in the future are not dates.
    if !(2000..=2200).contains(&naive.year()) {
        return None;
    }
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
}

/// What the ledger records about a recording's call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// True if the file name matched the template.
    pub matched: bool,
    /// From the name (CAMPAIGN, else INGROUP), else the directory's campaign.
    pub campaign: Option<String>,
    /// Unix seconds from the name; `None` means the mtime stands in.
    pub call_time: Option<i64>,
    pub phone: Option<String>,
    pub agent: Option<String>,
    pub lead_id: Option<String>,
    /// The time the name gave when it disagreed with the file's mtime by
    /// more than [`Naming::time_tolerance`]: not trusted, so `call_time` is
    /// `None` (retention counts from the mtime) and `status` flags it.
    pub name_time: Option<i64>,
}

/// `[naming]`: the template and the per-directory campaigns.
#[derive(Debug, Clone)]
pub struct Naming {
    pub template: NameTemplate,
    /// Recordings in these spool directories belong to that campaign unless
    /// their name says otherwise.
    pub dir_campaigns: BTreeMap<PathBuf, String>,
    /// How far a name's date may be from the file's mtime before the name is
    /// not believed (a wrong clock, a copied or renamed file).
    pub time_tolerance: Duration,
}

/// The default [`Naming::time_tolerance`].
pub const DEFAULT_TIME_TOLERANCE: Duration = Duration::from_secs(86_400);

impl Default for Naming {
    fn default() -> Naming {
        Naming {
            template: NameTemplate::parse(DEFAULT_NAME_TEMPLATE).unwrap_or(NameTemplate {
                text: String::new(),
                parts: Vec::new(),
            }),
            dir_campaigns: BTreeMap::new(),
            time_tolerance: DEFAULT_TIME_TOLERANCE,
        }
    }
}

impl Naming {
    /// One line naming the template and directory campaigns, for the audit trail.
    pub fn summary(&self) -> String {
        let mut s = format!("naming.template = {}", self.template.text());
        for (dir, c) in &self.dir_campaigns {
            s.push_str(&format!(", {} = {c}", dir.display()));
        }
        if self.time_tolerance != DEFAULT_TIME_TOLERANCE {
            let t = self.time_tolerance.as_secs();
            s.push_str(&format!(", naming.time_tolerance = {t}s"));
        }
        s
    }

    /// Attributes the recording at `path` (file name `name`, last written at
    /// `mtime_ns`) to its call. A name's date further than `time_tolerance`
    /// from the mtime is kept aside as `name_time`, not used as the call time.
    pub fn attribute(&self, path: &Path, name: &[u8], mtime_ns: i64) -> Attribution {
        let mut call = self.attribute_by_name(path, name);
        let mtime = mtime_ns.div_euclid(1_000_000_000);
        let tolerance = i64::try_from(self.time_tolerance.as_secs()).unwrap_or(i64::MAX);
        if let Some(t) = call.call_time
            && t.abs_diff(mtime) > tolerance.unsigned_abs()
        {
            call.name_time = call.call_time.take();
        }
        call
    }

    fn attribute_by_name(&self, path: &Path, name: &[u8]) -> Attribution {
        let dir_campaign = path
            .parent()
            .and_then(|d| self.dir_campaigns.get(d))
            .cloned();
        match self.template.matches(name) {
            Some(f) => Attribution {
                matched: true,
                campaign: f.campaign.or(f.ingroup).or(dir_campaign),
                call_time: f.call_time,
                phone: f.phone.as_deref().map(super::phone::normalize_lenient),
                agent: f.agent,
                lead_id: f.lead_id,
                name_time: None,
            },
            None => Attribution {
                campaign: dir_campaign,
                ..Attribution::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NameTemplate {
        NameTemplate::parse(s).unwrap()
    }

    /// What `name` says under `template` (which it must match).
    fn fields(template: &str, name: &[u8]) -> NameFields {
        t(template).matches(name).unwrap()
    }

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Local
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .earliest()
            .unwrap()
            .timestamp()
    }

    #[test]
    fn default_template_matches_vicidial_names() {
        let f = fields(DEFAULT_NAME_TEMPLATE, b"20260301-101500_5551234567-all.wav");
        assert_eq!(f.phone.as_deref(), Some("5551234567"));
        assert_eq!(f.call_time, Some(local(2026, 3, 1, 10, 15, 0)));
        let cases: [(&[u8], bool); 11] = [
            (b"20260301-101500_5551234567", true),
            (b"20260301-101500_5551234567-in.wav", true),
            (b"20260301-101500_5551234567-out.gsm", true),
            (b"20260301-101500_5551234567.mp3", true),
            (b"20260301-101500_5551234567-all.wav.zst", true),
            (b"2026031-101500_5551234567.wav", false),
            (b"20261301-101500_5551234567.wav", false),
            (b"20260301-101500_.wav", false),
            (b"20260301-101500_555x.wav", false),
            (b"hello.wav", false),
            (b"20260301-101500_5551234567-all.wav~", false),
        ];
        for (name, matches) in cases {
            assert_eq!(
                t(DEFAULT_NAME_TEMPLATE).matches(name).is_some(),
                matches,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn campaign_agent_and_other_variables() {
        let f = fields(
            "CAMPAIGN_AGENT_FULLDATE_CUSTPHONE",
            b"COLLECT_agent7_20260301-101500_5551234567-all.wav",
        );
        assert_eq!(f.campaign.as_deref(), Some("COLLECT"));
        assert_eq!(f.agent.as_deref(), Some("agent7"));
        // Underscores inside a campaign are resolved by backtracking on the date.
        let f = fields(
            "CAMPAIGN_FULLDATE_CUSTPHONE",
            b"MY_CAMP_20260301-101500_555.wav",
        );
        assert_eq!(f.campaign.as_deref(), Some("MY_CAMP"));
        let f = fields(
            "INGROUP-LEADID-EPOCH",
            b"SUPPORT_IN-12345-1772360100-in.wav",
        );
        assert_eq!(f.ingroup.as_deref(), Some("SUPPORT_IN"));
        assert_eq!(f.lead_id.as_deref(), Some("12345"));
        assert_eq!(f.call_time, Some(1772360100));
        let f = fields("TINYDATECUSTPHONE", b"2603011015005551234.wav");
        assert_eq!(f.call_time, Some(local(2026, 3, 1, 10, 15, 0)));
        assert_eq!(f.phone.as_deref(), Some("5551234"));
        let f = fields(
            "FULLDATE_VENDORLEADCODE_RECID_CALLID",
            b"20260301-101500__77_M3011015000012345.wav",
        );
        assert_eq!(f.vendor_lead_code.as_deref(), Some(""));
        assert_eq!(f.rec_id.as_deref(), Some("77"));
        assert_eq!(f.call_id.as_deref(), Some("M3011015000012345"));
    }

    #[test]
    fn template_errors_name_the_problem() {
        let e = NameTemplate::parse("FULLDATE_PHONE").unwrap_err();
        assert!(e.contains("unknown variable `PHONE`"), "{e}");
        assert!(e.contains("CUSTPHONE"), "{e}");
        assert!(NameTemplate::parse("recording").is_err());
        assert!(NameTemplate::parse("CAMPAIGNAGENT").is_err());
        assert!(NameTemplate::parse("FULLDATECUSTPHONE").is_ok());
    }

    /// Found by the fuzzer: many word variables between the same letters,
    /// against a name of those letters that ends wrong, took exponential
    /// time (minutes of one core, the whole intake stalled on one file).
    /// Each (part, offset) is now tried once, whatever the name.
    #[test]
    fn an_odd_name_against_a_template_of_many_variables_takes_bounded_steps() {
        let template = t("CALLIDbbbbbbbbbbbCALLIDbINGROUPbbbbCALLIDbbbbbbbbbbCALLIDbbCAMPAIGNbbbb");
        let fuzzed = [
            &b"b".repeat(94)[..],
            b"CALLID",
            &b"b".repeat(8),
            b"\0",
            &b"b".repeat(29),
            b"CAMPA",
        ]
        .concat();
        for name in [
            fuzzed,
            [&b"b".repeat(130)[..], b"CALLID", &b"b".repeat(20), b"!"].concat(),
            [&b"b".repeat(254)[..], b"!"].concat(),
            [&b"b".repeat(60)[..], b"!"].concat(),
        ] {
            let name = &name[..];
            let mut search = Search::new(&template.parts, name);
            assert!(!search.from(0, 0), "{}", String::from_utf8_lossy(name));
            let bound = (template.parts.len() + 1) * (name.len() + 1) * (name.len() + 2);
            assert!(
                search.calls <= bound,
                "{} calls, bound {bound}",
                search.calls
            );
            assert!(template.matches(name).is_none());
        }
        // Memory of failures does not change which match is found first.
        let f = fields("CALLID_CALLID_CAMPAIGN", b"a_b_c_d-all.wav");
        assert_eq!(f.call_id.as_deref(), Some("b"));
        assert_eq!(f.campaign.as_deref(), Some("c_d"));
    }

    #[test]
    fn directory_campaign_is_the_fallback() {
        let naming = Naming {
            template: t("CAMPAIGN_FULLDATE_CUSTPHONE"),
            dir_campaigns: [(PathBuf::from("/spool/sales"), "SALES".to_string())].into(),
            time_tolerance: DEFAULT_TIME_TOLERANCE,
        };
        let a = naming.attribute(
            Path::new("/spool/sales/COLLECT_20260301-101500_555.wav"),
            b"COLLECT_20260301-101500_555.wav",
            0,
        );
        assert_eq!(a.campaign.as_deref(), Some("COLLECT"), "the name wins");
        let a = naming.attribute(Path::new("/spool/sales/odd.wav"), b"odd.wav", 0);
        assert!(!a.matched);
        assert_eq!(a.campaign.as_deref(), Some("SALES"));
        assert_eq!(a.call_time, None);
        let a = naming.attribute(Path::new("/spool/other/odd.wav"), b"odd.wav", 0);
        assert_eq!(a, Attribution::default());
    }

    #[test]
    fn a_name_date_far_from_the_mtime_is_not_believed() {
        let naming = Naming::default();
        let name = b"20260301-101500_5551234567-all.wav";
        let named = local(2026, 3, 1, 10, 15, 0);
        let path = Path::new("/spool/a.wav");
        let ns = |secs: i64| secs * 1_000_000_000;
        // Written minutes after the call: the name is believed.
        let a = naming.attribute(path, name, ns(named + 600));
        assert_eq!((a.call_time, a.name_time), (Some(named), None));
        // Written 400 days later (a copy, a wrong clock): the mtime counts.
        let a = naming.attribute(path, name, ns(named + 400 * 86_400));
        assert_eq!((a.call_time, a.name_time), (None, Some(named)));
        assert_eq!(
            a.phone.as_deref(),
            Some("5551234567"),
            "the rest still holds"
        );
        // The number in the name is compared in `recording::phone`'s form.
        let a = naming.attribute(path, b"20260301-101500_15551234567-all.wav", ns(named));
        assert_eq!(a.phone.as_deref(), Some("5551234567"));
        // Just inside and just outside the tolerance, both directions.
        let day = 86_400;
        assert!(
            naming
                .attribute(path, name, ns(named - day))
                .call_time
                .is_some()
        );
        assert!(
            naming
                .attribute(path, name, ns(named - day - 1))
                .call_time
                .is_none()
        );
    }
}
