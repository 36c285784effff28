-- Issue 9: one form for phone numbers (recording::phone::normalize: digits,
-- without a NANP country code). The stored numbers of recordings and of
-- phone hold selectors are rewritten by the Rust step that runs with this
-- migration (schema.rs), so the rule is written once.
SELECT 1;
