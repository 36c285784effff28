-- Issue 20 item 10 and issue 19 part 2: a recording is matched to the
-- recording_log row whose times agree with the file's, from the live table
-- or VICIdial's archive tables.

-- db_attribution gains 'ambiguous': two recording_log rows agree with the
-- file's times, or rows exist and none does (db_reason names them). Never
-- asked again; the file name's attribution stands and no location is rewritten.
CREATE INDEX recordings_db_ambiguous ON recordings(id) WHERE db_attribution = 'ambiguous';
-- The archive tables an attribution came from ('recording_log_archive',
-- 'vicidial_log_archive', 'vicidial_closer_log_archive', comma-separated);
-- NULL: the live tables only.
ALTER TABLE recordings ADD COLUMN db_archived TEXT;
CREATE INDEX recordings_db_archived ON recordings(id) WHERE db_archived IS NOT NULL;
