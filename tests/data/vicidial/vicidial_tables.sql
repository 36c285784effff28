-- The VICIdial tables recvault reads and writes, for the tests: only the
-- columns recvault (and the tests that fill them) use, each with the type
-- VICIdial's schema gives it (db_schema_version 1728, VICIdial 2.14), and the
-- indexes recvault's queries rely on. MyISAM, like a VICIdial install; the
-- tests create the database as the install does (utf8, utf8_unicode_ci).
--
-- Statements end with ";" at the end of a line: the tests split on that.

CREATE TABLE recording_log (
  recording_id  int(10) unsigned NOT NULL AUTO_INCREMENT,
  channel       varchar(100),
  server_ip     varchar(15),
  extension     varchar(100),
  start_time    datetime,
  start_epoch   int(10) unsigned,
  end_time      datetime,
  end_epoch     int(10) unsigned,
  length_in_sec mediumint(8) unsigned,
  length_in_min double(8,2),
  filename      varchar(100),
  location      varchar(255),
  lead_id       int(9) unsigned,
  user          varchar(20),
  vicidial_id   varchar(20),
  PRIMARY KEY (recording_id),
  KEY filename (filename),
  KEY lead_id (lead_id),
  KEY user (user),
  KEY vicidial_id (vicidial_id)
) ENGINE=MyISAM;

CREATE TABLE recording_log_deletion_queue (
  recording_id int(9) unsigned NOT NULL,
  lead_id      int(10) unsigned,
  filename     varchar(100),
  location     varchar(255),
  date_queued  datetime,
  date_deleted datetime,
  PRIMARY KEY (recording_id),
  KEY date_deleted (date_deleted)
) ENGINE=MyISAM;

-- Outbound calls: recording_log.vicidial_id holds the call's uniqueid.
CREATE TABLE vicidial_log (
  uniqueid      varchar(20) NOT NULL,
  lead_id       int(9) unsigned NOT NULL,
  list_id       bigint(14) unsigned,
  campaign_id   varchar(8),
  call_date     datetime,
  start_epoch   int(10) unsigned,
  end_epoch     int(10) unsigned,
  length_in_sec int(10),
  status        varchar(6),
  phone_code    varchar(10),
  phone_number  varchar(18),
  user          varchar(20),
  PRIMARY KEY (uniqueid),
  KEY lead_id (lead_id),
  KEY call_date (call_date)
) ENGINE=MyISAM;

-- Inbound calls: recording_log.vicidial_id holds the closecallid; campaign_id
-- is the in-group.
CREATE TABLE vicidial_closer_log (
  closecallid   int(9) unsigned NOT NULL AUTO_INCREMENT,
  lead_id       int(9) unsigned NOT NULL,
  list_id       bigint(14) unsigned,
  campaign_id   varchar(20),
  call_date     datetime,
  start_epoch   int(10) unsigned,
  end_epoch     int(10) unsigned,
  length_in_sec int(10),
  status        varchar(6),
  phone_code    varchar(10),
  phone_number  varchar(18),
  user          varchar(20),
  uniqueid      varchar(20) NOT NULL DEFAULT '',
  PRIMARY KEY (closecallid),
  KEY lead_id (lead_id),
  KEY call_date (call_date),
  KEY campaign_id (campaign_id),
  KEY uniqueid (uniqueid)
) ENGINE=MyISAM;

-- Leads, and the lists that tie them to a campaign (the fallback attribution).
CREATE TABLE vicidial_list (
  lead_id      int(9) unsigned NOT NULL AUTO_INCREMENT,
  status       varchar(6),
  list_id      bigint(14) unsigned NOT NULL DEFAULT '0',
  phone_code   varchar(10),
  phone_number varchar(18) NOT NULL,
  PRIMARY KEY (lead_id),
  KEY list_id (list_id),
  KEY phone_number (phone_number)
) ENGINE=MyISAM;

CREATE TABLE vicidial_lists (
  list_id     bigint(14) unsigned NOT NULL,
  list_name   varchar(30),
  campaign_id varchar(8),
  active      enum('Y','N'),
  PRIMARY KEY (list_id)
) ENGINE=MyISAM;

-- Admin users, for HTTP Basic against VICIdial's own accounts, with the
-- columns VICIdial's user_authorization() counts failed logins in.
CREATE TABLE vicidial_users (
  user_id                     int(9) unsigned NOT NULL AUTO_INCREMENT,
  user                        varchar(20) NOT NULL,
  pass                        varchar(100) NOT NULL,
  full_name                   varchar(50),
  user_level                  tinyint(3) unsigned DEFAULT '1',
  active                      enum('Y','N') DEFAULT 'Y',
  failed_login_count          tinyint(3) unsigned DEFAULT '0',
  last_login_date             datetime DEFAULT '2001-01-01 00:00:01',
  last_ip                     varchar(15) DEFAULT '',
  pass_hash                   varchar(500) DEFAULT '',
  failed_login_attempts_today mediumint(8) unsigned DEFAULT '0',
  failed_login_count_today    smallint(6) unsigned DEFAULT '0',
  failed_last_ip_today        varchar(50) DEFAULT '',
  failed_last_type_today      varchar(20) DEFAULT '',
  PRIMARY KEY (user_id),
  UNIQUE KEY user (user)
) ENGINE=MyISAM;

-- This box's addresses, for listen links the admin pages can rewrite.
CREATE TABLE servers (
  server_id          varchar(10) NOT NULL,
  server_description varchar(255),
  server_ip          varchar(15) NOT NULL,
  active             enum('Y','N'),
  recording_web_link enum('SERVER_IP','ALT_IP','EXTERNAL_IP') DEFAULT 'SERVER_IP',
  alt_server_ip      varchar(100) DEFAULT '',
  external_server_ip varchar(100) DEFAULT '',
  UNIQUE KEY server_id (server_id)
) ENGINE=MyISAM;

-- How VICIdial hashes admin passwords, when it does, and whether it logs
-- who listened to a recording.
CREATE TABLE system_settings (
  version              varchar(50),
  db_schema_version    int(8) unsigned DEFAULT '0',
  pass_hash_enabled    enum('0','1') DEFAULT '0',
  pass_key             varchar(100) DEFAULT '',
  pass_cost            tinyint(2) unsigned DEFAULT '2',
  log_recording_access enum('0','1') DEFAULT '0'
) ENGINE=MyISAM;

-- VICIdial's own listen report: recording_log_redirect.php writes it when
-- system_settings.log_recording_access is '1'.
CREATE TABLE vicidial_recording_access_log (
  recording_access_log_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  recording_id            int(10) unsigned DEFAULT NULL,
  lead_id                 int(10) unsigned DEFAULT NULL,
  user                    varchar(20) DEFAULT NULL,
  access_datetime         datetime DEFAULT NULL,
  access_result           enum('ACCESSED','INVALID USER','INVALID PERMISSIONS','NO RECORDING','RECORDING UNAVAILABLE') DEFAULT NULL,
  ip                      varchar(15) DEFAULT '',
  PRIMARY KEY (recording_access_log_id),
  KEY recording_id (recording_id),
  KEY lead_id (lead_id)
) ENGINE=MyISAM;

-- Where ADMIN_archive_log_tables.pl moves old rows (INSERT IGNORE INTO
-- x_archive SELECT * FROM x, then DELETE FROM x WHERE older than the cut),
-- created as extras/MySQL_AST_CREATE_tables.sql creates them.
CREATE TABLE vicidial_log_archive LIKE vicidial_log;

CREATE TABLE vicidial_closer_log_archive LIKE vicidial_closer_log;
ALTER TABLE vicidial_closer_log_archive MODIFY closecallid INT(9) UNSIGNED NOT NULL;

CREATE TABLE recording_log_archive LIKE recording_log;
ALTER TABLE recording_log_archive MODIFY recording_id INT(10) UNSIGNED UNIQUE NOT NULL;
ALTER TABLE recording_log_archive DROP PRIMARY KEY;
