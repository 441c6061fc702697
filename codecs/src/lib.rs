//! Audio codecs and prompts.
