"""The reader's review: findings and commands, schema, autosave store, merge, sign-off, lexicon and BI-RADS words."""
