//! The config file as the operator wrote it: every table and key, all
//! optional, unknown keys refused. `validate` turns it into `Config`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) spool: Option<RawSpool>,
    pub(super) compress: Option<RawCompress>,
    pub(super) store: Option<RawStore>,
    pub(super) ledger: Option<RawLedger>,
    pub(super) daemon: Option<RawDaemon>,
    pub(super) naming: Option<RawNaming>,
    pub(super) retention: Option<RawRetention>,
    pub(super) vicidial: Option<super::vicidial::RawVicidial>,
    pub(super) serve: Option<super::serve::RawServe>,
    pub(super) console: Option<super::console::RawConsole>,
    pub(super) fleet: Option<super::fleet::RawFleet>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNaming {
    pub(super) template: Option<String>,
    pub(super) dir_campaigns: Option<BTreeMap<PathBuf, String>>,
    pub(super) time_tolerance: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) delete_unarchived: Option<bool>,
    pub(super) default: Option<String>,
    pub(super) sweep_every: Option<String>,
    pub(super) campaigns: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpool {
    pub(super) dirs: Option<Vec<PathBuf>>,
    pub(super) settle: Option<String>,
    pub(super) upload_after: Option<String>,
    pub(super) staging: Option<PathBuf>,
    pub(super) stage_in_memory: Option<String>,
    pub(super) rescan: Option<String>,
    pub(super) ignore: Option<Vec<String>>,
    pub(super) min_free: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompress {
    pub(super) codec: Option<String>,
    pub(super) level: Option<i32>,
    pub(super) long: Option<bool>,
    pub(super) campaigns: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) kind: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) bucket: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) path_style: Option<bool>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) path: Option<PathBuf>,
    pub(super) key_template: Option<String>,
    pub(super) multipart_threshold: Option<String>,
    pub(super) part_size: Option<String>,
    pub(super) verify: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) read_timeout: Option<String>,
    pub(super) max_upload_rate: Option<String>,
    pub(super) upload_windows: Option<Vec<String>>,
    pub(super) scrub_every: Option<String>,
    pub(super) scrub_sample: Option<usize>,
    pub(super) object_lock_legal_hold: Option<bool>,
    pub(super) account: Option<String>,
    pub(super) container: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) user: Option<String>,
    pub(super) host_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    pub(super) path: Option<PathBuf>,
    pub(super) backup_every: Option<String>,
    pub(super) backup_keep: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) workers: Option<usize>,
    pub(super) host: Option<String>,
    pub(super) log_level: Option<String>,
    pub(super) shutdown_grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyFile {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: String,
}
